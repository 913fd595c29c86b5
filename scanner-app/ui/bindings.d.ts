// Generated from scanner-app/core/src/view.rs by scanner_core::bindings; do not edit.

export type Verdict = "green" | "red" | "amber";

export type ScanView = { 
/**
 * Green, red or amber.
 */
verdict: Verdict, 
/**
 * One or two words for across the room: "Admit", "Rejected", "Check".
 */
headline: string, 
/**
 * The reason in words, e.g. "Already inside since 20:14, Gate B".
 */
detail: string, 
/**
 * Stable reason code (`already_inside`), for tests and logs.
 */
reason: string | null, 
/**
 * Ticket id (UUID), once the credential parsed.
 */
ticket_id: string | null, 
/**
 * Door-staff name from the manifest.
 */
display_name: string | null, 
/**
 * Tier number.
 */
tier: number | null, 
/**
 * Zones the ticket admits to (from the manifest), e.g. "0, 2".
 */
zones: string | null, 
/**
 * Whether staff must acknowledge before the next scan.
 */
needs_ack: boolean, 
/**
 * `node:seq` of the record written.
 */
scan_id: string | null, 
/**
 * "entry" or "exit".
 */
direction: string, 
/**
 * A repeat read of the same code inside the debounce window.
 */
repeat: boolean, };

export type AttendeeView = { 
/**
 * Ticket id (UUID).
 */
ticket_id: string, 
/**
 * Door-staff name.
 */
display_name: string, 
/**
 * Tier number.
 */
tier: number, 
/**
 * "valid" or "revoked".
 */
status: string, 
/**
 * "inside since 20:14, Gate B", "left at 21:02", "not checked in".
 */
presence: string, 
/**
 * Whether the ticket is inside now.
 */
inside: boolean, };

export type SearchResults = { 
/**
 * The first matches (at most the limit asked for).
 */
hits: Array<AttendeeView>, 
/**
 * How many entries matched in all.
 */
total: number, };

export type GateCount = { 
/**
 * Gate label.
 */
gate: string, 
/**
 * Admitted entries recorded there.
 */
admitted: number, };

export type Counts = { 
/**
 * Admitted entries, every gate.
 */
admitted: number, 
/**
 * Tickets inside now.
 */
inside: number, 
/**
 * Valid tickets in the manifest.
 */
capacity: number, 
/**
 * Admitted entries in the last 5 minutes.
 */
last_5_min: number, 
/**
 * Per gate, most admissions first.
 */
per_gate: Array<GateCount>, 
/**
 * Rejected scans at this device.
 */
rejected_here: number, };

export type PeerView = { 
/**
 * Its URL.
 */
url: string, 
/**
 * Answered within the last 10 seconds.
 */
reachable: boolean, };

export type SyncView = { 
/**
 * The cloud answered the last sync and it was recent.
 */
online: boolean, 
/**
 * "Online", "Offline: 3 scans waiting", in words.
 */
summary: string, 
/**
 * Last complete cloud sync, unix ms.
 */
last_sync_ms: number | null, 
/**
 * Seconds since the last complete sync.
 */
last_sync_age_secs: number | null, 
/**
 * Scans recorded here that the cloud does not hold yet.
 */
waiting: number, 
/**
 * Peers seen.
 */
peers: Array<PeerView>, 
/**
 * Manifest version held.
 */
manifest_version: number, 
/**
 * Seconds since the manifest held was issued.
 */
manifest_age_secs: number | null, 
/**
 * Tickets in the manifest.
 */
manifest_entries: number, 
/**
 * The last cloud error in words, when offline.
 */
last_error: string | null, };

export type Role = "steward" | "supervisor";

export type Phase = "setup" | "ready";

export type AppStatus = { 
/**
 * Setup or ready.
 */
phase: Phase, 
/**
 * Current role.
 */
role: Role, 
/**
 * Whether a PIN is set (needed to leave kiosk mode).
 */
pin_set: boolean, 
/**
 * Event id, once enrolled.
 */
event_id: string | null, 
/**
 * Gate label, once enrolled.
 */
gate: string | null, 
/**
 * "entry" or "exit".
 */
direction: string, 
/**
 * Who is working the device (email or name given at setup).
 */
operator: string | null, 
/**
 * This device's node id.
 */
node_id: string | null, };

export type EventChoice = { 
/**
 * Event id.
 */
id: string, 
/**
 * Name.
 */
name: string, 
/**
 * Venue.
 */
venue: string, 
/**
 * Start, RFC 3339.
 */
starts_at: string, 
/**
 * Lifecycle state.
 */
status: string, };

export type SignedIn = { 
/**
 * Their email.
 */
email: string, 
/**
 * Their cloud role.
 */
role: string, 
/**
 * Events to pick from.
 */
events: Array<EventChoice>, };

export type GateChoice = { 
/**
 * Event id.
 */
event_id: string, 
/**
 * Gate label, e.g. "Side door".
 */
gate: string, 
/**
 * Zone guarded, or none for any zone.
 */
zone: number | null, 
/**
 * Kiosk PIN to set (4 to 12 digits), needed to leave steward mode.
 */
pin: string, };

export type CommandError = { 
/**
 * Stable code, e.g. `not_enrolled`, `wrong_pin`, `cloud_unreachable`.
 */
code: string, 
/**
 * For the person at the door.
 */
message: string, };

/** Every command: its arguments and its answer. */
export type Commands = {
  status: { args: {}, answer: AppStatus },
  sign_in: { args: { cloudUrl: string, email: string, password: string }, answer: SignedIn },
  enroll_for: { args: { choice: GateChoice }, answer: AppStatus },
  enroll_with_code: { args: { cloudUrl: string, code: string, operator: string, pin: string }, answer: AppStatus },
  scan: { args: { text: string }, answer: ScanView },
  search: { args: { query: string }, answer: SearchResults },
  check_in_manually: { args: { ticketId: string, reason: string }, answer: ScanView },
  set_direction: { args: { direction: "entry" | "exit" }, answer: AppStatus },
  counts: { args: {}, answer: Counts },
  sync_state: { args: {}, answer: SyncView },
  lock: { args: {}, answer: AppStatus },
  unlock: { args: { pin: string }, answer: AppStatus },
  set_pin: { args: { pin: string }, answer: AppStatus },
  camera_start: { args: {}, answer: boolean },
  camera_stop: { args: {}, answer: boolean },
};

/** Every event: its payload. */
export type Events = {
  "camera-scan": ScanView | CommandError,
  "camera-preview": string,
};
