//! The JSON wire types of the device API (`docs/device-api.md`), owned
//! here so the cloud (server), the gate node and the scanner app (clients)
//! cannot drift apart: enrollment codes, enrollment and its proof of key
//! possession, the `X-Gate-Status` fleet report, the error body, and the
//! header names. Serde only, no IO. With the `openapi` feature the types
//! also derive `utoipa::ToSchema` for the cloud's OpenAPI document.
//!
//! Requests refuse unknown fields (the server is strict); answers accept
//! them (a client keeps working when the server adds a field).

use crate::{Direction, EventId, GatePolicy, NodeId, PublicKey, SecretKey, VerifyError};
use serde::{Deserialize, Serialize};

mod push;
mod staff;
pub use push::{PUSH_MANIFEST, PUSH_ROSTER, PushManifest, PushRoster};
pub use staff::{StaffEnrollRequest, staff_enrollment_subject};

/// The header with the cloud's clock (unix milliseconds) on every answer
/// to a device.
pub const TIME_HEADER: &str = "x-gatehouse-time";
/// The header a gate reports its state in with each check-in sync.
pub const GATE_STATUS_HEADER: &str = "x-gate-status";

/// What an enrollment proof signs: these bytes, then the code exactly as
/// sent.
pub const ENROLL_PROOF_PREFIX: &str = "gatehouse-enroll:";

/// The bytes a device signs to prove it holds its key at enrollment:
/// `"gatehouse-enroll:" + code` in UTF-8.
pub fn enrollment_message(code: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(ENROLL_PROOF_PREFIX.len() + code.len());
    msg.extend_from_slice(ENROLL_PROOF_PREFIX.as_bytes());
    msg.extend_from_slice(code.as_bytes());
    msg
}

/// The device key's enrollment proof for `code`.
pub fn sign_enrollment(device: &SecretKey, code: &str) -> [u8; 64] {
    device.sign(&enrollment_message(code))
}

/// Checks that `proof` is `device`'s signature over the enrollment message
/// for `code`.
pub fn verify_enrollment(
    device: &PublicKey,
    code: &str,
    proof: &[u8; 64],
) -> Result<(), VerifyError> {
    device.verify(&enrollment_message(code), proof)
}

/// Entry or exit gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentCode {
    /// The event the device will admit to.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub event_id: EventId,
    /// Gate label, 1 to 64 bytes, e.g. "North 2".
    pub gate: String,
    /// Zone the gate guards (0 to 31); null admits tickets of any zone.
    #[cfg_attr(feature = "openapi", schema(maximum = 31))]
    pub zone: Option<u8>,
    /// The zone by its name in the event (`GET /events/{id}/zones`),
    /// instead of `zone`.
    #[serde(default)]
    pub zone_name: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentCodeView {
    /// `XXXX-XXXX-XXXX`; give it to `gate-node enroll --code`.
    pub code: String,
    /// Unix seconds after which the code is refused.
    pub expires_at: i64,
    /// The event.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub event_id: EventId,
    /// Gate label.
    pub gate: String,
    /// Zone.
    pub zone: Option<u8>,
    /// The zone's name in the event, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
    /// Direction.
    pub direction: GateDirection,
}

/// `POST /devices/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrollment code.
    pub code: String,
    /// Device name shown to the organizer (1 to 64 characters).
    pub name: String,
    /// The device's ed25519 public key, 64 hex digits.
    pub device_public_key: String,
    /// 128 hex digits: ed25519 signature by the device key over the UTF-8
    /// bytes of `"gatehouse-enroll:" + code` (the code exactly as sent).
    pub proof: String,
}

impl EnrollRequest {
    /// A request for `code` with `device`'s public key and proof, hex.
    pub fn signed(device: &SecretKey, code: &str, name: &str) -> Self {
        Self {
            code: code.to_owned(),
            name: name.to_owned(),
            device_public_key: hex_encode(&device.public().to_bytes()),
            proof: hex_encode(&sign_enrollment(device, code)),
        }
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The gate policy a device enforces (the wire form of [`GatePolicy`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyView {
    /// The event.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
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
    /// The guarded zone's name in the event, for people (status, refusal
    /// messages); absent from older clouds and for unnamed zones. Not part
    /// of [`GatePolicy`]: nothing decides on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

impl From<&GatePolicy> for PolicyView {
    fn from(p: &GatePolicy) -> Self {
        Self {
            event_id: p.event_id,
            zone: p.zone,
            direction: p.direction.into(),
            grace_secs: p.grace_secs,
            require_listed: p.require_listed,
            default_reentry: p.default_reentry,
            zone_name: None,
        }
    }
}

impl From<PolicyView> for GatePolicy {
    fn from(p: PolicyView) -> Self {
        Self {
            event_id: p.event_id,
            zone: p.zone,
            direction: p.direction.into(),
            grace_secs: p.grace_secs,
            require_listed: p.require_listed,
            default_reentry: p.default_reentry,
        }
    }
}

/// What an enrolled device needs to admit offline and to sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    /// The device's node id (its id in the check-in CRDT).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub node_id: NodeId,
    /// 64 hex digits; `Authorization: Bearer` on every device call. Shown once.
    pub device_token: String,
    /// The event.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
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

/// The event's gossip key of one roster version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GossipKeyView {
    /// Roster version it belongs to.
    pub version: u64,
    /// 64 hex digits.
    pub key: String,
}

/// `GET /sync/events/{id}/roster?since=V`: the signed device roster and
/// the current gossip key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RosterView {
    /// The current roster version.
    pub version: u64,
    /// Hex of the signed roster: a delta from `since` when the cloud has
    /// that version, else the full roster (`docs/protocol.md`).
    pub roster: String,
    /// The LAN gossip key of the current version (it changes with every
    /// version, so a revoked device's key stops working).
    pub gossip_key: GossipKeyView,
}

/// The gate's state, sent as JSON in the optional `X-Gate-Status` header
/// of a check-in sync. Every field is optional; the cloud ignores unknown
/// fields and a malformed header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateStatusReport {
    /// The gate's own scans the cloud has not acknowledged.
    pub scans_waiting: Option<u64>,
    /// The manifest version held.
    pub manifest_version: Option<u64>,
    /// Where the gate's time comes from (`cloud`, `peer`, `system_clock`, `last_known`).
    pub clock: Option<String>,
    /// Whether that time is trusted.
    pub clock_trusted: Option<bool>,
    /// The gate's software version.
    pub software: Option<String>,
}

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_json`.
    pub code: String,
    /// Human-readable explanation (clients read a missing one as empty).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn event() -> EventId {
        EventId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
    }

    #[test]
    fn the_proof_is_the_device_keys_signature_over_the_prefixed_code() {
        assert_eq!(enrollment_message("AB-CD"), b"gatehouse-enroll:AB-CD");
        let key = SecretKey::from_seed([4; 32]);
        let proof = sign_enrollment(&key, "ABCD-EFGH-JKLM");
        verify_enrollment(&key.public(), "ABCD-EFGH-JKLM", &proof).unwrap();
        assert!(verify_enrollment(&key.public(), "ABCD-EFGH-JKLX", &proof).is_err());
        let other = SecretKey::from_seed([5; 32]).public();
        assert!(verify_enrollment(&other, "ABCD-EFGH-JKLM", &proof).is_err());

        let req = EnrollRequest::signed(&key, "ABCD-EFGH-JKLM", "pi");
        assert_eq!(req.device_public_key, hex::encode(key.public().to_bytes()));
        assert_eq!(req.proof, hex::encode(proof));
    }

    /// The JSON the cloud answered before these types moved here, byte for
    /// byte (field order included).
    #[test]
    fn answers_serialize_exactly_as_the_cloud_sent_them() {
        let policy = PolicyView {
            event_id: event(),
            zone: Some(2),
            direction: GateDirection::Entry,
            grace_secs: 60,
            require_listed: false,
            default_reentry: false,
            zone_name: None,
        };
        let resp = EnrollResponse {
            node_id: NodeId(Uuid::from_u128(7)),
            device_token: "ab".repeat(32),
            event_id: event(),
            root_public_key: "11".repeat(32),
            key_certificates: vec!["22".repeat(139)],
            gossip_key: "33".repeat(32),
            gossip_key_version: 1,
            roster: "44".repeat(8),
            policy: policy.clone(),
            gate: "North 2".into(),
        };
        let want = format!(
            concat!(
                r#"{{"node_id":"00000000-0000-0000-0000-000000000007","device_token":"{}","#,
                r#""event_id":"01900000-0000-7000-8000-000000000001","root_public_key":"{}","#,
                r#""key_certificates":["{}"],"gossip_key":"{}","gossip_key_version":1,"#,
                r#""roster":"{}","policy":{{"event_id":"01900000-0000-7000-8000-000000000001","zone":2,"#,
                r#""direction":"entry","grace_secs":60,"require_listed":false,"default_reentry":false}},"#,
                r#""gate":"North 2"}}"#
            ),
            "ab".repeat(32),
            "11".repeat(32),
            "22".repeat(139),
            "33".repeat(32),
            "44".repeat(8)
        );
        assert_eq!(serde_json::to_string(&resp).unwrap(), want);
        assert_eq!(serde_json::from_str::<EnrollResponse>(&want).unwrap(), resp);
        // The policy is the protocol's GatePolicy on the wire, too.
        let gate_policy = GatePolicy::from(policy.clone());
        assert_eq!(
            serde_json::to_string(&gate_policy).unwrap(),
            serde_json::to_string(&policy).unwrap()
        );
        assert_eq!(PolicyView::from(&gate_policy), policy);

        let code = EnrollmentCodeView {
            code: "ABCD-EFGH-JKMN".into(),
            expires_at: 1_790_000_000,
            event_id: event(),
            gate: "North 2".into(),
            zone: None,
            zone_name: None,
            direction: GateDirection::Exit,
        };
        assert_eq!(
            serde_json::to_string(&code).unwrap(),
            r#"{"code":"ABCD-EFGH-JKMN","expires_at":1790000000,"event_id":"01900000-0000-7000-8000-000000000001","gate":"North 2","zone":null,"direction":"exit"}"#
        );

        let err = ErrorBody {
            error: ErrorDetail {
                code: "invalid_proof".into(),
                message: "no".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"error":{"code":"invalid_proof","message":"no"}}"#
        );
        // A zone name travels when there is one; old answers without it parse.
        let named = PolicyView {
            zone_name: Some("Balcony".into()),
            ..policy.clone()
        };
        let json = serde_json::to_string(&named).unwrap();
        assert!(
            json.ends_with(r#","default_reentry":false,"zone_name":"Balcony"}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<PolicyView>(&json).unwrap(), named);
        assert_eq!(GatePolicy::from(named), gate_policy);

        // A client reads an error without a message.
        let bare: ErrorBody = serde_json::from_str(r#"{"error":{"code":"x"}}"#).unwrap();
        assert_eq!(bare.error.message, "");
    }

    #[test]
    fn requests_read_the_documented_json_and_refuse_unknown_fields() {
        let body = r#"{"event_id":"01900000-0000-7000-8000-000000000001","gate":"North 2","zone":0,"direction":"entry","ttl_secs":86400,"grace_secs":60,"require_listed":false}"#;
        let req: CreateEnrollmentCode = serde_json::from_str(body).unwrap();
        assert_eq!(req.direction, GateDirection::Entry);
        assert_eq!(req.zone, Some(0));
        let minimal: CreateEnrollmentCode = serde_json::from_str(
            r#"{"event_id":"01900000-0000-7000-8000-000000000001","gate":"g","zone":null,"direction":"exit"}"#,
        )
        .unwrap();
        assert_eq!(minimal.ttl_secs, None);
        assert!(
            serde_json::from_str::<CreateEnrollmentCode>(
                r#"{"event_id":"01900000-0000-7000-8000-000000000001","gate":"g","zone":null,"direction":"exit","extra":1}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<EnrollRequest>(
                r#"{"code":"c","name":"n","device_public_key":"k","proof":"p","x":1}"#
            )
            .is_err()
        );
        let enroll: EnrollRequest =
            serde_json::from_str(r#"{"code":"c","name":"n","device_public_key":"k","proof":"p"}"#)
                .unwrap();
        assert_eq!(
            serde_json::to_string(&enroll).unwrap(),
            r#"{"code":"c","name":"n","device_public_key":"k","proof":"p"}"#
        );
    }

    #[test]
    fn a_gate_status_report_reads_partial_and_unknown_fields() {
        let r: GateStatusReport =
            serde_json::from_str(r#"{"scans_waiting":3,"future":true}"#).unwrap();
        assert_eq!(r.scans_waiting, Some(3));
        assert_eq!(r.clock, None);
        let full = GateStatusReport {
            scans_waiting: Some(3),
            manifest_version: Some(12),
            clock: Some("cloud".into()),
            clock_trusted: Some(true),
            software: Some("0.1.0".into()),
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&serde_json::to_string(&full).unwrap())
                .unwrap(),
            serde_json::json!({"scans_waiting": 3, "manifest_version": 12, "clock": "cloud",
                               "clock_trusted": true, "software": "0.1.0"})
        );
    }
}
