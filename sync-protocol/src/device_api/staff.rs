//! Staff self-enrollment (`POST /devices/staff-enroll`): a person on the
//! event's staff roster, signed in with their own account, enrolls a
//! scanner for that event without an enrollment code. The device proves
//! it holds its key exactly as with a code ([`super::sign_enrollment`] /
//! [`super::verify_enrollment`]); what it signs in place of a code is the
//! [`staff_enrollment_subject`], which names the event and the account, so
//! a proof made for one event or one person enrolls nowhere else.

use super::{GateDirection, hex_encode, sign_enrollment};
use crate::{EventId, SecretKey};
use serde::{Deserialize, Serialize};

/// What a staff-enrolled device signs in place of a code:
/// `"staff/<event id>/<user id>"` (lower-case hyphenated UUIDs), so the
/// whole signed message is `"gatehouse-enroll:staff/<event>/<user>"`.
pub fn staff_enrollment_subject(event: EventId, user: uuid::Uuid) -> String {
    format!("staff/{}/{}", event.0.hyphenated(), user.hyphenated())
}

/// `POST /devices/staff-enroll` (the staff member's access token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StaffEnrollRequest {
    /// The event, one whose staff roster the caller is on.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub event_id: EventId,
    /// Gate label the staff member chose, 1 to 64 bytes, e.g. "Side door".
    pub gate: String,
    /// Zone the device guards (0 to 31); null admits tickets of any zone.
    #[cfg_attr(feature = "openapi", schema(maximum = 31))]
    pub zone: Option<u8>,
    /// `entry` or `exit`.
    pub direction: GateDirection,
    /// Device name shown to the organizer (1 to 64 characters).
    pub name: String,
    /// The device's ed25519 public key, 64 hex digits.
    pub device_public_key: String,
    /// 128 hex digits: ed25519 signature by the device key over the UTF-8
    /// bytes of `"gatehouse-enroll:staff/<event_id>/<caller's user id>"`.
    pub proof: String,
}

impl StaffEnrollRequest {
    /// A request signed by `device` for `user` (the signed-in account) at
    /// `event`'s gate `gate`.
    pub fn signed(
        device: &SecretKey,
        event: EventId,
        user: uuid::Uuid,
        gate: &str,
        zone: Option<u8>,
        direction: GateDirection,
        name: &str,
    ) -> Self {
        Self {
            event_id: event,
            gate: gate.to_owned(),
            zone,
            direction,
            name: name.to_owned(),
            device_public_key: hex_encode(&device.public().to_bytes()),
            proof: hex_encode(&sign_enrollment(
                device,
                &staff_enrollment_subject(event, user),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{enrollment_message, verify_enrollment};
    use super::*;
    use uuid::Uuid;

    fn event() -> EventId {
        EventId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
    }

    fn user() -> Uuid {
        Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00ff)
    }

    #[test]
    fn the_subject_names_the_event_and_the_account() {
        assert_eq!(
            enrollment_message(&staff_enrollment_subject(event(), user())),
            b"gatehouse-enroll:staff/01900000-0000-7000-8000-000000000001/01900000-0000-7000-8000-0000000000ff"
                .to_vec(),
            "the signed bytes are pinned: the cloud and every client must agree on them"
        );
    }

    #[test]
    fn a_staff_proof_verifies_only_for_its_own_event_and_account() {
        let device = SecretKey::from_seed([7; 32]);
        let req = StaffEnrollRequest::signed(
            &device,
            event(),
            user(),
            "Side door",
            None,
            GateDirection::Entry,
            "laptop",
        );
        let proof: [u8; 64] = hex::decode(&req.proof)
            .expect("hex")
            .try_into()
            .expect("64 bytes");
        let key = device.public();
        assert!(
            verify_enrollment(&key, &staff_enrollment_subject(event(), user()), &proof).is_ok()
        );
        let other_user = Uuid::from_u128(1);
        assert!(
            verify_enrollment(&key, &staff_enrollment_subject(event(), other_user), &proof)
                .is_err(),
            "a proof made for one account must not enroll for another"
        );
        let json = serde_json::to_value(&req).expect("json");
        assert_eq!(json["direction"], "entry");
        let mut bad = json.clone();
        bad["code"] = "ABCD".into();
        assert!(
            serde_json::from_value::<StaffEnrollRequest>(bad).is_err(),
            "requests refuse unknown fields"
        );
    }
}
