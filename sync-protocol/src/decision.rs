//! The admission decision: one pure function shared by gate nodes, the
//! scanner app and the cloud.
//!
//! Order of checks (the first failing check is the reason):
//!
//! 1. `malformed`: the text is not a well-formed `TK1:` credential.
//! 2. `unknown_key`: no certificate for the key id (for any event).
//! 3. `bad_signature`: the signature does not verify under that key.
//! 4. `wrong_event`: the (now authentic) credential names another event.
//! 5. `unknown_key` again if the key is not certified for the event the
//!    credential names; `key_not_valid` if its certificate does not cover now.
//!
//!    The signature is checked before anything the credential claims is
//!    believed: until it verifies, the decision carries no ticket, event,
//!    generation or tier, so a gate records nothing for junk (a record needs
//!    a ticket), whatever event or ticket the junk names.
//! 6. `event_closed`: the manifest's door state (the event's status as the
//!    cloud last signed it) does not admit: draft, ended or cancelled. A gate
//!    that was never told a door state admits as before; every decision
//!    carries the door state held and how old that news is.
//! 7. `revoked`: the manifest lists the ticket as revoked.
//! 8. `superseded`: the manifest lists a newer generation (transferred ticket).
//! 9. `not_listed`: the gate policy requires a manifest entry and there is none.
//! 10. `not_yet_valid` / `expired`: outside the credential's validity window
//!     (with the policy's grace).
//! 11. `wrong_zone`: the ticket's zones do not include the gate's zone.
//! 12. `already_inside`: an entry gate, and the check-in log says inside.
//! 13. `reentry_denied`: an entry gate, the ticket has exited, and re-entry is
//!     not allowed for it.
//!
//! Exit gates stop after step 5: nobody is kept inside because their ticket
//! was refunded, has expired or the event has ended.

use crate::checkin::{Direction, TicketState};
use crate::credential::Credential;
use crate::keys::{KeyLookupError, KeyRing};
use crate::manifest::{DoorState, EntryStatus, ManifestView};
use crate::{EventId, TicketId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a scan was refused. The numeric code is stored in scan records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Reason {
    /// Not a well-formed credential.
    Malformed = 1,
    /// Signature does not verify.
    BadSignature = 2,
    /// Key id not certified for this event.
    UnknownKey = 3,
    /// Ticket for another event.
    WrongEvent = 4,
    /// Revoked in the manifest (refund, cancellation).
    Revoked = 5,
    /// Validity window has not started.
    NotYetValid = 6,
    /// Validity window has ended.
    Expired = 7,
    /// Already admitted and not exited.
    AlreadyInside = 8,
    /// Ticket does not admit to this gate's zone.
    WrongZone = 9,
    /// The signing key's certificate does not cover now, or the organizer
    /// retired the key.
    KeyNotValid = 10,
    /// Exited earlier and may not re-enter.
    ReentryDenied = 11,
    /// An older generation of a transferred or re-issued ticket.
    Superseded = 12,
    /// Not in the manifest, and the gate requires it.
    NotListed = 13,
    /// The event is not open at the door (draft, ended or cancelled).
    EventClosed = 14,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 14] = [
        Reason::Malformed,
        Reason::BadSignature,
        Reason::UnknownKey,
        Reason::WrongEvent,
        Reason::Revoked,
        Reason::NotYetValid,
        Reason::Expired,
        Reason::AlreadyInside,
        Reason::WrongZone,
        Reason::KeyNotValid,
        Reason::ReentryDenied,
        Reason::Superseded,
        Reason::NotListed,
        Reason::EventClosed,
    ];
    /// The stable snake_case name used in JSON, logs and test vectors.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::BadSignature => "bad_signature",
            Reason::UnknownKey => "unknown_key",
            Reason::WrongEvent => "wrong_event",
            Reason::Revoked => "revoked",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Expired => "expired",
            Reason::AlreadyInside => "already_inside",
            Reason::WrongZone => "wrong_zone",
            Reason::KeyNotValid => "key_not_valid",
            Reason::ReentryDenied => "reentry_denied",
            Reason::Superseded => "superseded",
            Reason::NotListed => "not_listed",
            Reason::EventClosed => "event_closed",
        }
    }
    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }
    /// The reason for a wire code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Reason {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

/// Admit or reject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "reason")]
pub enum Outcome {
    /// Open the gate.
    Admit,
    /// Keep it shut, for this reason.
    Reject(Reason),
}

impl Outcome {
    /// Wire code: 0 for admit, otherwise the reason code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Admit => 0,
            Outcome::Reject(r) => r.code(),
        }
    }
    /// The outcome for a wire code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Outcome::Admit),
            c => Reason::from_code(c).map(Outcome::Reject),
        }
    }
    /// Whether the gate opens.
    pub fn is_admit(self) -> bool {
        self == Outcome::Admit
    }
    /// The reason, for rejections.
    pub fn reason(self) -> Option<Reason> {
        match self {
            Outcome::Admit => None,
            Outcome::Reject(r) => Some(r),
        }
    }
}

/// How a gate is configured for an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatePolicy {
    /// The event this gate admits to.
    pub event_id: EventId,
    /// The zone this gate guards; `None` admits tickets of any zone.
    pub zone: Option<u8>,
    /// Entry or exit gate.
    pub direction: Direction,
    /// Seconds of tolerance at both ends of a credential's validity window.
    pub grace_secs: u64,
    /// Refuse tickets missing from the manifest (otherwise a correctly signed,
    /// unlisted ticket is admitted: sold after the last manifest sync).
    pub require_listed: bool,
    /// Re-entry rule for tickets the manifest does not list.
    pub default_reentry: bool,
}

impl GatePolicy {
    /// An entry gate for `event_id`: any zone, 60 s grace, unlisted tickets
    /// admitted, no re-entry unless the manifest allows it.
    pub fn entry(event_id: EventId) -> Self {
        Self {
            event_id,
            zone: None,
            direction: Direction::Entry,
            grace_secs: 60,
            require_listed: false,
            default_reentry: false,
        }
    }
}

/// The best time the device has, and whether it trusts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeReading {
    /// Unix seconds.
    pub unix_secs: u64,
    /// False when the clock has not been confirmed by NTP, the cloud or a peer
    /// since boot; the decision then says its time checks are uncertain.
    pub trusted: bool,
}

/// Answers "is this ticket inside right now?" for the decision.
pub trait CheckinView {
    /// The folded state of `ticket`.
    fn ticket_state(&self, ticket: &TicketId) -> TicketState;
}

/// What the gate decided and what door staff should see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Admit or reject (with the reason).
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The ticket, once the credential parsed.
    pub ticket_id: Option<TicketId>,
    /// Event named by the credential, once it parsed.
    pub event_id: Option<EventId>,
    /// Credential generation, once it parsed.
    pub generation: Option<u16>,
    /// Tier, once the credential parsed.
    pub tier: Option<u16>,
    /// Door-staff display name from the manifest, if listed.
    pub display_name: Option<String>,
    /// A time-dependent check ran on an untrusted clock.
    pub time_uncertain: bool,
    /// The event's door state the gate held (`None`: never told).
    #[serde(default)]
    pub door: Option<DoorState>,
    /// How old the gate's news of the door state was, seconds (`None`:
    /// never told). A gate offline since before a change decides on its
    /// last known state and says how stale it is.
    #[serde(default)]
    pub door_news_age_secs: Option<u64>,
}

impl Decision {
    fn reject(reason: Reason) -> Self {
        Self {
            outcome: Outcome::Reject(reason),
            ticket_id: None,
            event_id: None,
            generation: None,
            tier: None,
            display_name: None,
            time_uncertain: false,
            door: None,
            door_news_age_secs: None,
        }
    }
}

/// Decides on scanned text. No I/O: everything it needs is passed in.
pub fn decide(
    text: &str,
    keys: &KeyRing,
    manifest: &dyn ManifestView,
    checkins: &dyn CheckinView,
    policy: &GatePolicy,
    now: TimeReading,
) -> Decision {
    let Ok(credential) = Credential::from_qr_text(text.trim_end_matches(['\r', '\n'])) else {
        return Decision::reject(Reason::Malformed);
    };
    decide_credential(&credential, keys, manifest, checkins, policy, now)
}

/// [`decide`] for a credential already parsed.
pub fn decide_credential(
    credential: &Credential,
    keys: &KeyRing,
    manifest: &dyn ManifestView,
    checkins: &dyn CheckinView,
    policy: &GatePolicy,
    now: TimeReading,
) -> Decision {
    let claims = &credential.claims;
    let news = manifest.door();
    // Nothing the credential claims is believed before its signature verifies.
    if let Err(reason) = authenticate(credential, keys) {
        return Decision {
            door: news.state,
            door_news_age_secs: news.as_of.map(|t| now.unix_secs.saturating_sub(t)),
            ..Decision::reject(reason)
        };
    }
    let mut d = Decision {
        ticket_id: Some(claims.ticket_id),
        event_id: Some(claims.event_id),
        generation: Some(claims.generation),
        tier: Some(claims.tier),
        door: news.state,
        door_news_age_secs: news.as_of.map(|t| now.unix_secs.saturating_sub(t)),
        ..Decision::reject(Reason::Malformed)
    };
    d.outcome = match check(credential, keys, manifest, checkins, policy, now, &mut d) {
        Ok(()) => Outcome::Admit,
        Err(reason) => Outcome::Reject(reason),
    };
    d
}

/// The decision for a ticket found in the manifest and let in by a person
/// (a manual check-in at a scanner app, e.g. a holder whose phone is dead):
/// the same checks as [`decide`] minus the credential's (there is none to
/// verify; the operator vouches for the holder), so a revoked, superseded,
/// wrong-zone, already-inside or re-entry-refused ticket is refused exactly
/// as at a gate. A ticket the manifest does not list is `not_listed`: without
/// a credential nothing else says it exists.
pub fn decide_listed(
    ticket: &TicketId,
    manifest: &dyn ManifestView,
    checkins: &dyn CheckinView,
    policy: &GatePolicy,
) -> Decision {
    let mut d = Decision {
        ticket_id: Some(*ticket),
        event_id: Some(policy.event_id),
        ..Decision::reject(Reason::NotListed)
    };
    let Some(entry) = manifest.entry(ticket) else {
        return d;
    };
    d.generation = Some(entry.generation);
    d.tier = Some(entry.tier);
    d.display_name = Some(entry.display_name.clone());
    // A manual check-in obeys the door state like a scan does (the age of
    // that news needs a clock, which a manual check-in does not take).
    d.door = manifest.door().state;
    let result = if policy.direction == Direction::Exit {
        Ok(())
    } else if d.door.is_some_and(|s: DoorState| !s.admits()) {
        Err(Reason::EventClosed)
    } else {
        check_listing(Some(&entry), entry.generation, policy, &mut d)
            .and_then(|()| check_door(ticket, Some(&entry), entry.zones, checkins, policy))
    };
    d.outcome = match result {
        Ok(()) => Outcome::Admit,
        Err(reason) => Outcome::Reject(reason),
    };
    d
}

/// Checks the signature under the key its key id names, whatever event the
/// key is certified for (every certificate of one key id carries one key).
fn authenticate(credential: &Credential, keys: &KeyRing) -> Result<(), Reason> {
    let cert = keys
        .lookup(&credential.key_id)
        .first()
        .ok_or(Reason::UnknownKey)?;
    credential
        .verify(&cert.public_key)
        .map_err(|_| Reason::BadSignature)
}

fn check(
    credential: &Credential,
    keys: &KeyRing,
    manifest: &dyn ManifestView,
    checkins: &dyn CheckinView,
    policy: &GatePolicy,
    now: TimeReading,
    d: &mut Decision,
) -> Result<(), Reason> {
    let claims = &credential.claims;
    if claims.event_id != policy.event_id {
        return Err(Reason::WrongEvent);
    }
    let t = now.unix_secs;
    match keys.key_for(&credential.key_id, &claims.event_id, t) {
        Ok(_) => {}
        Err(KeyLookupError::Unknown) => return Err(Reason::UnknownKey),
        Err(KeyLookupError::OutsideWindow(_)) => {
            d.time_uncertain |= !now.trusted;
            return Err(Reason::KeyNotValid);
        }
        // No reason code of its own: scan records carry the code, and
        // peers of the previous release must still read them.
        Err(KeyLookupError::Retired(_)) => return Err(Reason::KeyNotValid),
    }
    if policy.direction == Direction::Exit {
        return Ok(());
    }
    if d.door.is_some_and(|s: DoorState| !s.admits()) {
        return Err(Reason::EventClosed);
    }
    let entry = manifest.entry(&claims.ticket_id);
    check_listing(entry.as_ref(), claims.generation, policy, d)?;
    if let Some(w) = claims.window {
        d.time_uncertain |= !now.trusted;
        if t.saturating_add(policy.grace_secs) < w.not_before {
            return Err(Reason::NotYetValid);
        }
        if t > w.not_after.saturating_add(policy.grace_secs) {
            return Err(Reason::Expired);
        }
    }
    let zones = entry.as_ref().map_or(claims.zones, |e| e.zones);
    check_door(&claims.ticket_id, entry.as_ref(), zones, checkins, policy)
}

/// Steps 6 to 8: what the manifest says about the ticket.
fn check_listing(
    entry: Option<&crate::manifest::ManifestEntry>,
    generation: u16,
    policy: &GatePolicy,
    d: &mut Decision,
) -> Result<(), Reason> {
    if let Some(e) = entry {
        d.display_name = Some(e.display_name.clone());
        if e.status == EntryStatus::Revoked {
            return Err(Reason::Revoked);
        }
        if generation < e.generation {
            return Err(Reason::Superseded);
        }
    } else if policy.require_listed {
        return Err(Reason::NotListed);
    }
    Ok(())
}

/// Steps 10 to 12: zone, already inside, re-entry.
fn check_door(
    ticket: &TicketId,
    entry: Option<&crate::manifest::ManifestEntry>,
    zones: u32,
    checkins: &dyn CheckinView,
    policy: &GatePolicy,
) -> Result<(), Reason> {
    if let Some(zone) = policy.zone
        && (zone >= 32 || zones & (1 << zone) == 0)
    {
        return Err(Reason::WrongZone);
    }
    match checkins.ticket_state(ticket) {
        TicketState::NeverSeen => Ok(()),
        TicketState::Inside { .. } => Err(Reason::AlreadyInside),
        TicketState::Outside { .. } => {
            let reentry = entry.map_or(policy.default_reentry, |e| e.reentry);
            if reentry {
                Ok(())
            } else {
                Err(Reason::ReentryDenied)
            }
        }
    }
}
