//! Request and response bodies of the check-in endpoints.

use crate::devices::dto::GateDirection;
use crate::model::{EventId, TicketId, TicketStatus, from_millis};
use crate::store::StoredScan;
use serde::{Deserialize, Serialize};
use sync_protocol::checkin::{DoubleAdmission, TicketState};
use sync_protocol::{Decision, ScanId};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// A ticket to look up: its presented credential, or its id (manual entry).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketLookup {
    /// The QR text (`TK1:...`).
    pub credential: Option<String>,
    /// The ticket id.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub ticket_id: Option<TicketId>,
}

/// `POST /checkin/check-in`: an online check-in by door staff.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInRequest {
    /// The QR text (`TK1:...`); or give `ticket_id`.
    pub credential: Option<String>,
    /// The ticket id (its current credential is used).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub ticket_id: Option<TicketId>,
    /// The event the door admits to (default: the ticket's). A ticket of
    /// another event is then refused as `wrong_event`.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<EventId>,
    /// Gate label recorded with the scan (default "online").
    pub gate: Option<String>,
    /// Zone the door guards (0 to 31; default any).
    #[schema(minimum = 0, maximum = 31)]
    pub zone: Option<u8>,
    /// `entry` (default) or `exit`.
    pub direction: Option<GateDirection>,
}

/// `GET /checkin/tickets/{id}/validate` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ValidateQuery {
    /// Zone of the door, 0 to 31 (default any).
    #[param(minimum = 0, maximum = 31)]
    pub zone: Option<u8>,
    /// `entry` (default) or `exit`.
    pub direction: Option<GateDirection>,
}

/// Keyset page parameters for scan lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScanPage {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `scan_id` of the last item of the previous page (`NODE:SEQ`).
    #[param(
        pattern = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}:[0-9]{1,19}$"
    )]
    pub cursor: Option<String>,
}

/// One scan, as recorded by a gate or by the cloud.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanView {
    /// `node:seq`, the scan's id everywhere.
    pub scan_id: String,
    /// Recording node (a device id, or the event's cloud node).
    pub node_id: String,
    /// That node's sequence number.
    pub seq: u64,
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Ticket.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// Credential generation presented.
    pub generation: u16,
    /// Entry or exit.
    pub direction: GateDirection,
    /// `admit` or `reject`.
    pub decision: &'static str,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// Hybrid logical clock (orders scans).
    pub hlc: u64,
    /// When, by the recording node's clock (the HLC's physical part).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub scanned_at: OffsetDateTime,
    /// Gate label.
    pub gate: String,
    /// Operator (staff user id for online check-ins, empty at a fixed gate).
    pub operator: String,
    /// Zone of the gate.
    pub zone: Option<u8>,
    /// When the cloud received it.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: OffsetDateTime,
}

impl From<&StoredScan> for ScanView {
    fn from(s: &StoredScan) -> Self {
        let r = &s.record;
        Self {
            scan_id: r.id.to_string(),
            node_id: r.id.node.to_string(),
            seq: r.id.seq,
            event_id: r.event_id,
            ticket_id: r.ticket_id,
            generation: r.generation,
            direction: r.direction.into(),
            decision: if r.outcome.is_admit() {
                "admit"
            } else {
                "reject"
            },
            reason: r.outcome.reason().map(|x| x.to_string()),
            hlc: r.hlc.0,
            scanned_at: from_millis(r.hlc.physical_ms().min(i64::MAX as u64) as i64),
            gate: r.gate.clone(),
            operator: r.operator.clone(),
            zone: r.zone,
            received_at: from_millis(s.received_at),
        }
    }
}

/// A page of scans.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanList {
    /// The scans, in HLC order.
    pub items: Vec<ScanView>,
    /// Cursor for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Where a ticket stands at the door.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinTicketView {
    /// Ticket.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Name door staff see.
    pub holder_name: String,
    /// Tier number.
    pub tier: u16,
    /// Ticket lifecycle state.
    pub status: TicketStatus,
    /// Current credential generation.
    pub generation: u16,
    /// Registered for validation: listed in the event's manifest, which
    /// every gate holds (false for reserved tickets).
    pub registered: bool,
    /// `valid` or `revoked` in the manifest, when listed.
    pub manifest_status: Option<String>,
    /// `never_seen`, `inside` or `outside`, from every scan held.
    pub state: &'static str,
    /// Admitted entries.
    pub entries: u32,
    /// Scans of this ticket, in HLC order.
    pub scans: Vec<ScanView>,
    /// Entries admitted while the ticket was already inside.
    pub double_admissions: Vec<DoubleAdmissionView>,
}

/// Two admitted entries with no exit between them.
#[derive(Debug, Serialize, ToSchema)]
pub struct DoubleAdmissionView {
    /// Ticket.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// The entry first in HLC order.
    pub first: String,
    /// The entry admitted while already inside.
    pub second: String,
}

impl From<&DoubleAdmission> for DoubleAdmissionView {
    fn from(d: &DoubleAdmission) -> Self {
        Self {
            ticket_id: d.ticket_id,
            first: d.first.to_string(),
            second: d.second.to_string(),
        }
    }
}

/// A decision of the admission function.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    /// `admit` or `reject`.
    pub decision: &'static str,
    /// Why it was rejected (`already_inside`, `revoked`, ...).
    pub reason: Option<String>,
    /// Ticket, once the credential parsed.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub ticket_id: Option<TicketId>,
    /// Event named by the credential.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<EventId>,
    /// Door-staff display name from the manifest.
    pub display_name: Option<String>,
    /// The ticket's state the decision saw.
    pub state: &'static str,
    /// The scan recorded (online check-in only).
    pub scan_id: Option<String>,
}

impl DecisionView {
    /// From a decision, the state it saw and the recorded scan.
    pub fn new(d: &Decision, state: TicketState, scan: Option<ScanId>) -> Self {
        Self {
            decision: if d.outcome.is_admit() {
                "admit"
            } else {
                "reject"
            },
            reason: d.outcome.reason().map(|r| r.to_string()),
            ticket_id: d.ticket_id,
            event_id: d.event_id,
            display_name: d.display_name.clone(),
            state: state_name(state),
            scan_id: scan.map(|s| s.to_string()),
        }
    }
}

/// `never_seen`, `inside` or `outside`.
pub fn state_name(s: TicketState) -> &'static str {
    match s {
        TicketState::NeverSeen => "never_seen",
        TicketState::Inside { .. } => "inside",
        TicketState::Outside { .. } => "outside",
    }
}

/// Check-in figures of an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckinStats {
    /// Event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Tickets admitted at least once.
    pub admitted: u64,
    /// Admitted entry scans (re-entries included).
    pub admissions: i64,
    /// Admitted exits.
    pub exits: i64,
    /// Rejected scans.
    pub rejected: i64,
    /// Tickets whose last admitted scan is an entry.
    pub inside_now: u64,
    /// Per gate label.
    pub per_gate: Vec<GateStats>,
    /// Admitted entries per hour (by the recording node's clock, UTC).
    pub per_hour: Vec<HourStats>,
    /// Entries admitted while the ticket was already inside (partitions).
    pub double_admissions: Vec<DoubleAdmissionView>,
    /// Second copies of held scan ids with other content (a device signed
    /// two records under one id, e.g. a cloned SD card), kept as evidence.
    #[serde(default)]
    pub conflicting_records: u64,
    /// Records revoked devices made after their revocation: kept as
    /// evidence, never counted above.
    #[serde(default)]
    pub revoked_device_records: u64,
}

/// Scans at one gate.
#[derive(Debug, Serialize, ToSchema)]
pub struct GateStats {
    /// Gate label.
    pub gate: String,
    /// Admitted entries.
    pub admitted: i64,
    /// Admitted exits.
    pub exits: i64,
    /// Rejected scans.
    pub rejected: i64,
}

/// Admitted entries in one hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct HourStats {
    /// Start of the hour.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub hour: OffsetDateTime,
    /// Admitted entries.
    pub admitted: u64,
}
