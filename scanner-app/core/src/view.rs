//! What the window shows, as plain serializable values. Every type here is
//! exported to TypeScript (`ui/bindings.d.ts`, see [`crate::bindings`]), so
//! the front end and the Rust side cannot drift apart.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The colour of the result screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Let them in (or out).
    Green,
    /// Keep them out.
    Red,
    /// Admitted, but staff must look and acknowledge (time uncertain, a
    /// double admission just flagged).
    Amber,
}

/// One scan or manual check-in, as the result screen shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ScanView {
    /// Green, red or amber.
    pub verdict: Verdict,
    /// One or two words for across the room: "Admit", "Rejected", "Check".
    pub headline: String,
    /// The reason in words, e.g. "Already inside since 20:14, Gate B".
    pub detail: String,
    /// Stable reason code (`already_inside`), for tests and logs.
    pub reason: Option<String>,
    /// Ticket id (UUID), once the credential parsed.
    pub ticket_id: Option<String>,
    /// Door-staff name from the manifest.
    pub display_name: Option<String>,
    /// Tier number.
    pub tier: Option<u16>,
    /// Zones the ticket admits to (from the manifest), e.g. "0, 2".
    pub zones: Option<String>,
    /// Whether staff must acknowledge before the next scan.
    pub needs_ack: bool,
    /// `node:seq` of the record written.
    pub scan_id: Option<String>,
    /// "entry" or "exit".
    pub direction: String,
    /// A repeat read of the same code inside the debounce window.
    pub repeat: bool,
}

/// An attendee found by search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AttendeeView {
    /// Ticket id (UUID).
    pub ticket_id: String,
    /// Door-staff name.
    pub display_name: String,
    /// Tier number.
    pub tier: u16,
    /// "valid" or "revoked".
    pub status: String,
    /// "inside since 20:14, Gate B", "left at 21:02", "not checked in".
    pub presence: String,
    /// Whether the ticket is inside now.
    pub inside: bool,
}

/// Search results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SearchResults {
    /// The first matches (at most the limit asked for).
    pub hits: Vec<AttendeeView>,
    /// How many entries matched in all.
    pub total: u32,
}

/// Admissions at one gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GateCount {
    /// Gate label.
    pub gate: String,
    /// Admitted entries recorded there.
    pub admitted: u32,
}

/// Door counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Counts {
    /// Admitted entries, every gate.
    pub admitted: u32,
    /// Tickets inside now.
    pub inside: u32,
    /// Valid tickets in the manifest.
    pub capacity: u32,
    /// Admitted entries in the last 5 minutes.
    pub last_5_min: u32,
    /// Per gate, most admissions first.
    pub per_gate: Vec<GateCount>,
    /// Rejected scans at this device.
    pub rejected_here: u32,
}

/// A peer device on the venue LAN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PeerView {
    /// Its URL.
    pub url: String,
    /// Answered within the last 10 seconds.
    pub reachable: bool,
}

/// The always-visible sync bar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, TS)]
pub struct SyncView {
    /// The cloud answered the last sync and it was recent.
    pub online: bool,
    /// "Online", "Offline: 3 scans waiting", in words.
    pub summary: String,
    /// Last complete cloud sync, unix ms.
    pub last_sync_ms: Option<f64>,
    /// Seconds since the last complete sync.
    pub last_sync_age_secs: Option<f64>,
    /// Scans recorded here that the cloud does not hold yet.
    pub waiting: u32,
    /// Peers seen.
    pub peers: Vec<PeerView>,
    /// Manifest version held.
    pub manifest_version: f64,
    /// Seconds since the manifest held was issued.
    pub manifest_age_secs: Option<f64>,
    /// Tickets in the manifest.
    pub manifest_entries: u32,
    /// The last cloud error in words, when offline.
    pub last_error: Option<String>,
}

/// What a person may do on this device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Scans only (kiosk mode).
    Steward,
    /// Also manual check-in, exit mode and settings.
    Supervisor,
}

/// Where the app is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not enrolled: sign in or enter a code.
    Setup,
    /// Enrolled and scanning.
    Ready,
}

/// The app's state for the header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AppStatus {
    /// Setup or ready.
    pub phase: Phase,
    /// Current role.
    pub role: Role,
    /// Whether a PIN is set (needed to leave kiosk mode).
    pub pin_set: bool,
    /// Event id, once enrolled.
    pub event_id: Option<String>,
    /// Gate label, once enrolled.
    pub gate: Option<String>,
    /// "entry" or "exit".
    pub direction: String,
    /// Who is working the device (email or name given at setup).
    pub operator: Option<String>,
    /// This device's node id.
    pub node_id: Option<String>,
}

/// An event the signed-in staff member may work at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct EventChoice {
    /// Event id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Venue.
    pub venue: String,
    /// Start, RFC 3339.
    pub starts_at: String,
    /// Lifecycle state.
    pub status: String,
}

/// The answer to a sign-in: who, and where they may work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SignedIn {
    /// Their email.
    pub email: String,
    /// Their cloud role.
    pub role: String,
    /// Events to pick from.
    pub events: Vec<EventChoice>,
}

/// Enrolling this device for a gate of the chosen event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GateChoice {
    /// Event id.
    pub event_id: String,
    /// Gate label, e.g. "Side door".
    pub gate: String,
    /// Zone guarded, or none for any zone.
    pub zone: Option<u8>,
    /// Kiosk PIN to set (4 to 12 digits), needed to leave steward mode.
    pub pin: String,
}

/// A command failed; `message` says what to do next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CommandError {
    /// Stable code, e.g. `not_enrolled`, `wrong_pin`, `cloud_unreachable`.
    pub code: String,
    /// For the person at the door.
    pub message: String,
}
