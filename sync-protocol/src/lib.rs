//! The ticket protocol shared by the cloud, the gate nodes and the scanner
//! app. Sans-IO: pure types, encodings, signatures, the check-in CRDT and the
//! admission decision. No clock, no randomness, no network, no database: the
//! caller passes time in and moves the bytes. Byte layouts are specified in
//! `docs/protocol.md`; wire structs are frozen once released, and a change is
//! a new layout version.
//!
//! - [`keys`]: organizer root key, event keys, key certificates and
//!   retirements, [`KeyRing`].
//! - [`credential`]: what the QR code holds (`TK1:` + Base45).
//! - [`manifest`]: signed manifests and chained deltas.
//! - [`hlc`]: the hybrid logical clock that orders scans.
//! - [`checkin`]: scan records and the grow-only check-in set.
//! - [`roster`]: the signed device roster every record is checked against.
//! - [`sync`]: the messages replicas exchange, and the LAN envelope.
//! - [`decision`]: [`decide`], the one admission function.
//! - [`device_api`]: the JSON wire types of the cloud's device API.

pub mod base45;
pub mod checkin;
pub mod credential;
pub mod decision;
pub mod device_api;
#[doc(hidden)]
pub mod fuzzing;
pub mod hlc;
mod ids;
pub mod keys;
pub mod manifest;
pub mod roster;
pub mod sync;
mod wire;

pub use checkin::{CheckinLog, Direction, RecordSignature, ScanRecord, TicketState};
pub use credential::{Claims, Credential, ValidityWindow};
pub use decision::{
    CheckinView, Decision, GatePolicy, Outcome, Reason, TimeReading, decide, decide_listed,
};
pub use hlc::{Hlc, HlcClock};
pub use ids::{EventId, KeyId, NodeId, ScanId, TicketId};
pub use keys::{KeyCertificate, KeyRetirement, KeyRing, PublicKey, SecretKey};
pub use manifest::{Manifest, ManifestDelta, ManifestEntry, ManifestState, ManifestView};
pub use roster::{RecordRefusal, Roster, RosterEntry, SignedRoster};
pub use sync::SyncMessage;

/// Bytes that are not a well-formed protocol object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Input ended early.
    #[error("input is truncated")]
    Truncated,
    /// Bytes left over after the object.
    #[error("trailing bytes after the object")]
    TrailingBytes,
    /// Wrong magic bytes: not this kind of object.
    #[error("wrong magic bytes")]
    BadMagic,
    /// A layout version this build does not know.
    #[error("unsupported layout version {0}")]
    UnsupportedVersion(u8),
    /// Larger than the protocol allows.
    #[error("input exceeds the protocol's size limits")]
    TooLarge,
    /// A field has a value the layout forbids.
    #[error("invalid: {0}")]
    Invalid(&'static str),
}

/// A signature or certificate that does not check out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Signed by a key that is not the one expected.
    #[error("signed by an unknown key")]
    UnknownKey,
    /// The signature does not match the bytes.
    #[error("signature does not verify")]
    BadSignature,
}
