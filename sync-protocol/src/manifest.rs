//! Signed ticket manifests and deltas.
//!
//! A manifest is the cloud's list of every ticket of one event (id, tier,
//! zones, status, door-staff display name, entry rules) at one version. A
//! delta carries only the entries that changed between two versions. Both are
//! signed by an event key, and both carry a 32-byte chain digest: a delta names
//! the `(version, digest)` it applies to, so a node that holds anything else
//! (it missed a delta, or the cloud's history forked) sees the mismatch and
//! fetches a full manifest instead. Layouts are in `docs/protocol.md`.
//!
//! Decoding verifies the signature over the raw bytes before it inflates the
//! entries, so unsigned input never costs more than one signature check.

use crate::keys::{CERT_LEN, KeyCertificate, KeyRing, SecretKey};
use crate::wire::{Reader, Writer};
use crate::{DecodeError, EventId, KeyId, TicketId, VerifyError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Magic of a full manifest.
pub const MANIFEST_MAGIC: [u8; 2] = *b"TM";
/// Magic of a delta.
pub const DELTA_MAGIC: [u8; 2] = *b"TD";
/// Layout version of both without a door state.
pub const MANIFEST_VERSION: u8 = 1;
/// Layout version of both with the event's door state (one byte after the
/// header's times and digests).
pub const MANIFEST_VERSION_DOOR: u8 = 2;
/// Most entries one manifest or delta may carry.
pub const MAX_ENTRIES: u32 = 4_000_000;
/// Longest display name, in bytes of UTF-8.
pub const MAX_DISPLAY_NAME: usize = 64;
/// Most key certificates in one manifest or delta.
pub const MAX_CERTS: u8 = 16;
const MAX_ENTRY_LEN: usize = 1 + 16 + 3 + 3 + 5 + 1 + 1 + MAX_DISPLAY_NAME;
const MAX_RAW_LEN: usize = 256 << 20;

const ENC_RAW: u8 = 0;
const ENC_DEFLATE: u8 = 1;
const FLAG_REVOKED: u8 = 0b01;
const FLAG_REENTRY: u8 = 0b10;

/// What the event's status means at the door, as the cloud signed it. On
/// sale and live admit; the others refuse every entry as `event_closed`
/// (exits are never refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum DoorState {
    /// Not published yet: no entry.
    Draft = 1,
    /// Published and on sale: tickets admit (within their validity window).
    OnSale = 2,
    /// Doors open: tickets admit.
    Live = 3,
    /// Over: no entry.
    Ended = 4,
    /// Called off: no entry.
    Cancelled = 5,
}

impl DoorState {
    /// Whether tickets admit at all.
    pub fn admits(self) -> bool {
        matches!(self, Self::OnSale | Self::Live)
    }
    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }
    /// The state for a wire code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Draft,
            2 => Self::OnSale,
            3 => Self::Live,
            4 => Self::Ended,
            5 => Self::Cancelled,
            _ => return None,
        })
    }
}

/// What a node knows of the door state, and since when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorNews {
    /// The last door state the cloud signed (`None`: never told; admits).
    pub state: Option<DoorState>,
    /// Unix seconds at which it was last known to hold (the signing time of
    /// the manifest that said it, or a later "up to date" answer).
    pub as_of: Option<u64>,
}

/// Whether a ticket may be admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Admissible (subject to the other checks).
    Valid,
    /// Refunded, cancelled or superseded: never admitted.
    Revoked,
}

/// One ticket as the manifest describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Current credential generation; credentials of other generations are refused.
    pub generation: u16,
    /// Tier number.
    pub tier: u16,
    /// Zone mask.
    pub zones: u32,
    /// Valid or revoked.
    pub status: EntryStatus,
    /// Whether the holder may re-enter after an exit scan.
    pub reentry: bool,
    /// What door staff see, e.g. "A. Jensen, VIP" (at most 64 bytes).
    pub display_name: String,
}

/// Answers "what does the manifest say about this ticket?" for the decision.
/// Implemented in memory by [`ManifestState`] and on SQLite by the gate node.
pub trait ManifestView {
    /// The entry for `ticket`, if the manifest lists it.
    fn entry(&self, ticket: &TicketId) -> Option<ManifestEntry>;
    /// The event's door state as last told (default: never told).
    fn door(&self) -> DoorNews {
        DoorNews::default()
    }
}

/// A full manifest after its signature was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The event.
    pub event_id: EventId,
    /// Manifest version (strictly increasing per event).
    pub version: u64,
    /// When the cloud produced it, unix seconds.
    pub issued_at: u64,
    /// Chain digest at `version`.
    pub digest: [u8; 32],
    /// Event-key certificates (the key set); each verified against the root.
    pub certs: Vec<KeyCertificate>,
    /// Every ticket, ascending by id.
    pub entries: Vec<ManifestEntry>,
    /// Key that signed it.
    pub signer: KeyId,
    /// The event's door state (layout 2; `None` in layout 1).
    pub door: Option<DoorState>,
}

/// A delta after its signature was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestDelta {
    /// The event.
    pub event_id: EventId,
    /// Version this delta applies to.
    pub base_version: u64,
    /// Chain digest at `base_version`.
    pub base_digest: [u8; 32],
    /// Version after applying it.
    pub version: u64,
    /// Chain digest at `version`.
    pub digest: [u8; 32],
    /// When the cloud produced it, unix seconds.
    pub issued_at: u64,
    /// New event-key certificates, if any.
    pub certs: Vec<KeyCertificate>,
    /// Changed entries, ascending by id.
    pub entries: Vec<ManifestEntry>,
    /// Key that signed it.
    pub signer: KeyId,
    /// The event's door state at `version` (layout 2; `None` in layout 1).
    pub door: Option<DoorState>,
}

/// Digest of the empty manifest (version 0) of an event.
pub fn genesis_digest(event_id: &EventId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"TKMC1 genesis");
    h.update(event_id.as_bytes());
    h.finalize().into()
}

/// Chain digest after one version step that changed `changed` (any order):
/// `SHA-256("TKMC1" || prev || be64(version) || raw entries block)`. The
/// reference cloud uses this; to a node the digest is an opaque token that
/// the signer vouches for.
pub fn chain_digest(prev: &[u8; 32], version: u64, changed: &[ManifestEntry]) -> [u8; 32] {
    let mut sorted: Vec<&ManifestEntry> = changed.iter().collect();
    sorted.sort_by_key(|e| e.ticket_id);
    sorted.dedup_by_key(|e| e.ticket_id);
    let mut h = Sha256::new();
    h.update(b"TKMC1");
    h.update(prev);
    h.update(version.to_be_bytes());
    h.update(encode_entries_raw(sorted.into_iter()));
    h.finalize().into()
}

/// [`chain_digest`] for a version step that also set the door state:
/// `SHA-256("TKMC1 door" || prev || be64(version) || door code || raw entries block)`.
pub fn door_chain_digest(
    prev: &[u8; 32],
    version: u64,
    door: DoorState,
    changed: &[ManifestEntry],
) -> [u8; 32] {
    let mut sorted: Vec<&ManifestEntry> = changed.iter().collect();
    sorted.sort_by_key(|e| e.ticket_id);
    sorted.dedup_by_key(|e| e.ticket_id);
    let mut h = Sha256::new();
    h.update(b"TKMC1 door");
    h.update(prev);
    h.update(version.to_be_bytes());
    h.update([door.code()]);
    h.update(encode_entries_raw(sorted.into_iter()));
    h.finalize().into()
}

fn write_layout(w: &mut Writer, door: Option<DoorState>) {
    w.u8(door.map_or(MANIFEST_VERSION, |_| MANIFEST_VERSION_DOOR));
}

fn write_door(w: &mut Writer, door: Option<DoorState>) {
    if let Some(d) = door {
        w.u8(d.code());
    }
}

fn read_layout(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.u8()? {
        MANIFEST_VERSION => Ok(false),
        MANIFEST_VERSION_DOOR => Ok(true),
        other => Err(DecodeError::UnsupportedVersion(other)),
    }
}

fn read_door(r: &mut Reader<'_>, present: bool) -> Result<Option<DoorState>, DecodeError> {
    if !present {
        return Ok(None);
    }
    DoorState::from_code(r.u8()?)
        .map(Some)
        .ok_or(DecodeError::Invalid("unknown door state"))
}

/// What a manifest or delta failed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not well-formed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A certificate or the signature did not verify.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// For another event than the one expected.
    #[error("manifest is for another event")]
    WrongEvent,
    /// Older than (or a different history at the same version as) what is held.
    #[error("manifest version {got} does not advance the held version {held}")]
    Stale {
        /// Version held.
        held: u64,
        /// Version offered.
        got: u64,
    },
    /// The delta does not start from the held `(version, digest)`: fetch a full manifest.
    #[error("delta starts at version {base}, node holds {held}: fetch a full manifest")]
    Gap {
        /// Version held.
        held: u64,
        /// Version the delta applies to.
        base: u64,
    },
    /// Same version, different history: fetch a full manifest.
    #[error("delta base digest differs from the held digest at version {0}: fetch a full manifest")]
    Fork(u64),
    /// The signer is not a certified key for this event at `issued_at`.
    #[error("signer {0} is not a certified key for this event")]
    UnknownSigner(KeyId),
    /// The signer is an event key the organizer's root retired.
    #[error("signer {0} is a retired key of this event")]
    RetiredSigner(KeyId),
    /// Would not fit the size limits.
    #[error("cannot encode: {0}")]
    Encode(&'static str),
}

fn check_entry(e: &ManifestEntry) -> Result<(), ManifestError> {
    if e.display_name.len() > MAX_DISPLAY_NAME {
        return Err(ManifestError::Encode("display name longer than 64 bytes"));
    }
    Ok(())
}

fn write_entry(w: &mut Writer, prev: Option<&TicketId>, e: &ManifestEntry) {
    let id = e.ticket_id.as_bytes();
    let shared = prev.map_or(0, |p| {
        p.as_bytes()
            .iter()
            .zip(id)
            .take(15)
            .take_while(|(a, b)| a == b)
            .count()
    });
    w.u8(shared as u8);
    w.bytes(&id[shared..]);
    w.varint(u64::from(e.generation));
    w.varint(u64::from(e.tier));
    w.varint(u64::from(e.zones));
    let mut flags = 0;
    if e.status == EntryStatus::Revoked {
        flags |= FLAG_REVOKED;
    }
    if e.reentry {
        flags |= FLAG_REENTRY;
    }
    w.u8(flags);
    w.short_str(&e.display_name);
}

fn encode_entries_raw<'a>(entries: impl Iterator<Item = &'a ManifestEntry>) -> Vec<u8> {
    let mut w = Writer::default();
    let mut prev: Option<&TicketId> = None;
    for e in entries {
        write_entry(&mut w, prev, e);
        prev = Some(&e.ticket_id);
    }
    w.into_inner()
}

fn write_entries_section(w: &mut Writer, entries: &[ManifestEntry]) -> Result<(), ManifestError> {
    if entries.len() > MAX_ENTRIES as usize {
        return Err(ManifestError::Encode("too many entries"));
    }
    for e in entries {
        check_entry(e)?;
    }
    let raw = encode_entries_raw(entries.iter());
    let deflated = miniz_oxide::deflate::compress_to_vec(&raw, 6);
    w.u32(entries.len() as u32);
    w.u32(raw.len() as u32);
    if deflated.len() < raw.len() {
        w.u8(ENC_DEFLATE);
        w.u32(deflated.len() as u32);
        w.bytes(&deflated);
    } else {
        w.u8(ENC_RAW);
        w.u32(raw.len() as u32);
        w.bytes(&raw);
    }
    Ok(())
}

struct EntriesSection<'a> {
    count: u32,
    raw_len: usize,
    encoding: u8,
    stored: &'a [u8],
}

fn read_entries_section<'a>(r: &mut Reader<'a>) -> Result<EntriesSection<'a>, DecodeError> {
    let count = r.u32()?;
    if count > MAX_ENTRIES {
        return Err(DecodeError::TooLarge);
    }
    let raw_len = r.u32()? as usize;
    if raw_len > count as usize * MAX_ENTRY_LEN || raw_len > MAX_RAW_LEN {
        return Err(DecodeError::Invalid(
            "entries length impossible for the entry count",
        ));
    }
    let encoding = r.u8()?;
    let stored_len = r.u32()? as usize;
    match encoding {
        ENC_RAW if stored_len != raw_len => {
            return Err(DecodeError::Invalid("raw entries length mismatch"));
        }
        ENC_RAW | ENC_DEFLATE => {}
        _ => return Err(DecodeError::Invalid("unknown entries encoding")),
    }
    let stored = r.take(stored_len)?;
    Ok(EntriesSection {
        count,
        raw_len,
        encoding,
        stored,
    })
}

fn decode_entries(section: &EntriesSection<'_>) -> Result<Vec<ManifestEntry>, DecodeError> {
    let inflated;
    let raw: &[u8] = if section.encoding == ENC_DEFLATE {
        inflated =
            miniz_oxide::inflate::decompress_to_vec_with_limit(section.stored, section.raw_len)
                .map_err(|_| {
                    DecodeError::Invalid("entries do not inflate to their stated length")
                })?;
        &inflated
    } else {
        section.stored
    };
    if raw.len() != section.raw_len {
        return Err(DecodeError::Invalid(
            "entries do not inflate to their stated length",
        ));
    }
    let mut r = Reader::new(raw);
    let mut entries = Vec::with_capacity(section.count as usize);
    let mut prev = [0u8; 16];
    for i in 0..section.count {
        let shared = usize::from(r.u8()?);
        if shared > 15 || (i == 0 && shared != 0) {
            return Err(DecodeError::Invalid("bad ticket id prefix length"));
        }
        let mut id = prev;
        id[shared..].copy_from_slice(r.take(16 - shared)?);
        if i > 0 && id <= prev {
            return Err(DecodeError::Invalid(
                "entries not in strictly ascending id order",
            ));
        }
        prev = id;
        let generation = r.varint_u16()?;
        let tier = r.varint_u16()?;
        let zones = r.varint_u32()?;
        let flags = r.u8()?;
        if flags & !(FLAG_REVOKED | FLAG_REENTRY) != 0 {
            return Err(DecodeError::Invalid("unknown entry flags"));
        }
        let display_name = r.short_str()?;
        if display_name.len() > MAX_DISPLAY_NAME {
            return Err(DecodeError::Invalid("display name longer than 64 bytes"));
        }
        entries.push(ManifestEntry {
            ticket_id: TicketId::from_bytes(id),
            generation,
            tier,
            zones,
            status: if flags & FLAG_REVOKED != 0 {
                EntryStatus::Revoked
            } else {
                EntryStatus::Valid
            },
            reentry: flags & FLAG_REENTRY != 0,
            display_name,
        });
    }
    r.finish()?;
    Ok(entries)
}

/// Decodes `data` as an entries section and its entries, for the fuzz targets.
pub(crate) fn fuzz_entries_section(data: &[u8]) {
    let mut r = Reader::new(data);
    if let Ok(section) = read_entries_section(&mut r)
        && let Ok(entries) = decode_entries(&section)
    {
        let mut w = Writer::default();
        if write_entries_section(&mut w, &entries).is_ok() {
            let bytes = w.into_inner();
            let mut again = Reader::new(&bytes);
            let section = read_entries_section(&mut again).expect("re-encoded section parses");
            assert_eq!(decode_entries(&section).as_ref(), Ok(&entries));
        }
    }
}

fn write_certs(w: &mut Writer, certs: &[KeyCertificate]) -> Result<(), ManifestError> {
    let n = u8::try_from(certs.len())
        .ok()
        .filter(|n| *n <= MAX_CERTS)
        .ok_or(ManifestError::Encode("too many key certificates"))?;
    w.u8(n);
    for c in certs {
        w.bytes(&c.encode());
    }
    Ok(())
}

fn read_certs(r: &mut Reader<'_>) -> Result<Vec<KeyCertificate>, DecodeError> {
    let n = r.u8()?;
    if n > MAX_CERTS {
        return Err(DecodeError::TooLarge);
    }
    if r.remaining() < usize::from(n) * CERT_LEN {
        return Err(DecodeError::Truncated);
    }
    (0..n).map(|_| KeyCertificate::read(r)).collect()
}

fn sort_entries(entries: &mut [ManifestEntry]) -> Result<(), ManifestError> {
    entries.sort_by_key(|e| e.ticket_id);
    if entries.windows(2).any(|w| w[0].ticket_id == w[1].ticket_id) {
        return Err(ManifestError::Encode("duplicate ticket id"));
    }
    Ok(())
}

fn sign_into(mut w: Writer, key: &SecretKey) -> Vec<u8> {
    w.bytes(&key.key_id().0);
    let sig = key.sign(&w.buf);
    w.bytes(&sig);
    w.into_inner()
}

/// Checks the certificates against the ring's root, then the signature over
/// `bytes[..len-64]`, with the signer found among the carried certificates or
/// the ring, certified for `event_id` and valid at `issued_at`.
fn verify_signed(
    bytes: &[u8],
    ring: &KeyRing,
    certs: &[KeyCertificate],
    event_id: &EventId,
    issued_at: u64,
    signer: KeyId,
) -> Result<(), ManifestError> {
    let mut ring = ring.clone();
    for c in certs {
        if &c.event_id != event_id {
            return Err(ManifestError::WrongEvent);
        }
        ring.insert(c.clone())?;
    }
    let key = ring
        .key_for(&signer, event_id, issued_at)
        .map_err(|e| match e {
            crate::keys::KeyLookupError::Retired(_) => ManifestError::RetiredSigner(signer),
            _ => ManifestError::UnknownSigner(signer),
        })?;
    let (signed, sig) = bytes.split_at(bytes.len() - 64);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(sig);
    key.verify(signed, &signature)?;
    Ok(())
}

/// Inputs shared by [`Manifest::sign`] and [`ManifestDelta::sign`].
#[derive(Debug, Clone)]
pub struct Header<'a> {
    /// The event.
    pub event_id: EventId,
    /// Version being published.
    pub version: u64,
    /// Chain digest at `version`.
    pub digest: [u8; 32],
    /// Unix seconds.
    pub issued_at: u64,
    /// Key certificates to carry.
    pub certs: &'a [KeyCertificate],
}

impl Manifest {
    /// Encodes and signs a full manifest (layout 1, no door state);
    /// `entries` are sorted in place.
    pub fn sign(
        key: &SecretKey,
        header: &Header<'_>,
        entries: &mut [ManifestEntry],
    ) -> Result<Vec<u8>, ManifestError> {
        Self::sign_layout(key, header, None, entries)
    }

    /// [`Manifest::sign`] carrying the event's door state (layout 2).
    pub fn sign_with_door(
        key: &SecretKey,
        header: &Header<'_>,
        door: DoorState,
        entries: &mut [ManifestEntry],
    ) -> Result<Vec<u8>, ManifestError> {
        Self::sign_layout(key, header, Some(door), entries)
    }

    fn sign_layout(
        key: &SecretKey,
        header: &Header<'_>,
        door: Option<DoorState>,
        entries: &mut [ManifestEntry],
    ) -> Result<Vec<u8>, ManifestError> {
        sort_entries(entries)?;
        let mut w = Writer::with_capacity(128 + entries.len() * 24);
        w.bytes(&MANIFEST_MAGIC);
        write_layout(&mut w, door);
        w.bytes(header.event_id.as_bytes());
        w.u64(header.version);
        w.u64(header.issued_at);
        w.bytes(&header.digest);
        write_door(&mut w, door);
        write_certs(&mut w, header.certs)?;
        write_entries_section(&mut w, entries)?;
        Ok(sign_into(w, key))
    }

    /// Decodes, verifies against `ring` and checks it is for `event_id`.
    pub fn open(bytes: &[u8], ring: &KeyRing, event_id: &EventId) -> Result<Self, ManifestError> {
        let mut r = Reader::new(bytes);
        if r.array::<2>()? != MANIFEST_MAGIC {
            return Err(DecodeError::BadMagic.into());
        }
        let has_door = read_layout(&mut r)?;
        let event = EventId::from_bytes(r.array()?);
        let version = r.u64()?;
        let issued_at = r.u64()?;
        let digest = r.array()?;
        let door = read_door(&mut r, has_door)?;
        let certs = read_certs(&mut r)?;
        let section = read_entries_section(&mut r)?;
        let signer = KeyId(r.array()?);
        r.take(64)?;
        r.finish()?;
        if &event != event_id {
            return Err(ManifestError::WrongEvent);
        }
        verify_signed(bytes, ring, &certs, &event, issued_at, signer)?;
        Ok(Self {
            event_id: event,
            version,
            issued_at,
            digest,
            certs,
            entries: decode_entries(&section)?,
            signer,
            door,
        })
    }
}

impl ManifestDelta {
    /// Encodes and signs a delta from `(base_version, base_digest)` to the
    /// header's version (layout 1, no door state); `entries` are sorted in
    /// place.
    pub fn sign(
        key: &SecretKey,
        header: &Header<'_>,
        base_version: u64,
        base_digest: &[u8; 32],
        entries: &mut [ManifestEntry],
    ) -> Result<Vec<u8>, ManifestError> {
        Self::sign_layout(key, header, base_version, base_digest, None, entries)
    }

    /// [`ManifestDelta::sign`] carrying the event's door state at the
    /// header's version (layout 2).
    pub fn sign_with_door(
        key: &SecretKey,
        header: &Header<'_>,
        base_version: u64,
        base_digest: &[u8; 32],
        door: DoorState,
        entries: &mut [ManifestEntry],
    ) -> Result<Vec<u8>, ManifestError> {
        Self::sign_layout(key, header, base_version, base_digest, Some(door), entries)
    }

    fn sign_layout(
        key: &SecretKey,
        header: &Header<'_>,
        base_version: u64,
        base_digest: &[u8; 32],
        door: Option<DoorState>,
        entries: &mut [ManifestEntry],
    ) -> Result<Vec<u8>, ManifestError> {
        if header.version <= base_version {
            return Err(ManifestError::Encode("delta must advance the version"));
        }
        sort_entries(entries)?;
        let mut w = Writer::with_capacity(256 + entries.len() * 32);
        w.bytes(&DELTA_MAGIC);
        write_layout(&mut w, door);
        w.bytes(header.event_id.as_bytes());
        w.u64(base_version);
        w.bytes(base_digest);
        w.u64(header.version);
        w.bytes(&header.digest);
        w.u64(header.issued_at);
        write_door(&mut w, door);
        write_certs(&mut w, header.certs)?;
        write_entries_section(&mut w, entries)?;
        Ok(sign_into(w, key))
    }

    /// Decodes, verifies against `ring` and checks it is for `event_id`.
    pub fn open(bytes: &[u8], ring: &KeyRing, event_id: &EventId) -> Result<Self, ManifestError> {
        let mut r = Reader::new(bytes);
        if r.array::<2>()? != DELTA_MAGIC {
            return Err(DecodeError::BadMagic.into());
        }
        let has_door = read_layout(&mut r)?;
        let event = EventId::from_bytes(r.array()?);
        let base_version = r.u64()?;
        let base_digest = r.array()?;
        let version = r.u64()?;
        let digest = r.array()?;
        let issued_at = r.u64()?;
        if version <= base_version {
            return Err(DecodeError::Invalid("delta does not advance the version").into());
        }
        let door = read_door(&mut r, has_door)?;
        let certs = read_certs(&mut r)?;
        let section = read_entries_section(&mut r)?;
        let signer = KeyId(r.array()?);
        r.take(64)?;
        r.finish()?;
        if &event != event_id {
            return Err(ManifestError::WrongEvent);
        }
        verify_signed(bytes, ring, &certs, &event, issued_at, signer)?;
        Ok(Self {
            event_id: event,
            base_version,
            base_digest,
            version,
            digest,
            issued_at,
            certs,
            entries: decode_entries(&section)?,
            signer,
            door,
        })
    }

    /// Whether this delta applies on top of `(version, digest)`.
    pub fn check_base(&self, version: u64, digest: &[u8; 32]) -> Result<(), ManifestError> {
        if self.base_version != version {
            return Err(ManifestError::Gap {
                held: version,
                base: self.base_version,
            });
        }
        if &self.base_digest != digest {
            return Err(ManifestError::Fork(version));
        }
        Ok(())
    }
}

/// An event's manifest held in memory: what a scanner or test uses, and the
/// reference for how a store applies manifests and deltas.
#[derive(Clone, Debug)]
pub struct ManifestState {
    event_id: EventId,
    version: u64,
    digest: [u8; 32],
    entries: HashMap<TicketId, ManifestEntry>,
    door: DoorNews,
}

impl ManifestState {
    /// The empty manifest (version 0) of an event.
    pub fn empty(event_id: EventId) -> Self {
        Self {
            event_id,
            version: 0,
            digest: genesis_digest(&event_id),
            entries: HashMap::new(),
            door: DoorNews::default(),
        }
    }
    /// Records that the cloud confirmed, at `at` (unix s), that the held
    /// version is current: the door news is that fresh.
    pub fn confirm_current(&mut self, at: u64) {
        if self.door.state.is_some() {
            self.door.as_of = self.door.as_of.max(Some(at));
        }
    }
    fn learn_door(&mut self, door: Option<DoorState>, issued_at: u64) {
        if let Some(state) = door {
            self.door = DoorNews {
                state: Some(state),
                as_of: Some(issued_at),
            };
        }
    }
    /// The event.
    pub fn event_id(&self) -> EventId {
        self.event_id
    }
    /// Version held.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// Chain digest held.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether no ticket is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Replaces everything with a full manifest, refusing to go backwards.
    pub fn replace(&mut self, manifest: Manifest) -> Result<(), ManifestError> {
        if manifest.event_id != self.event_id {
            return Err(ManifestError::WrongEvent);
        }
        if manifest.version < self.version
            || (manifest.version == self.version && manifest.digest != self.digest)
        {
            return Err(ManifestError::Stale {
                held: self.version,
                got: manifest.version,
            });
        }
        self.version = manifest.version;
        self.digest = manifest.digest;
        self.learn_door(manifest.door, manifest.issued_at);
        self.entries = manifest
            .entries
            .into_iter()
            .map(|e| (e.ticket_id, e))
            .collect();
        Ok(())
    }
    /// Applies a delta if it starts from the held state; otherwise changes nothing.
    pub fn apply(&mut self, delta: ManifestDelta) -> Result<(), ManifestError> {
        if delta.event_id != self.event_id {
            return Err(ManifestError::WrongEvent);
        }
        delta.check_base(self.version, &self.digest)?;
        self.version = delta.version;
        self.digest = delta.digest;
        self.learn_door(delta.door, delta.issued_at);
        for e in delta.entries {
            self.entries.insert(e.ticket_id, e);
        }
        Ok(())
    }
}

impl ManifestView for ManifestState {
    fn entry(&self, ticket: &TicketId) -> Option<ManifestEntry> {
        self.entries.get(ticket).cloned()
    }
    fn door(&self) -> DoorNews {
        self.door
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry(n: u8, status: EntryStatus) -> ManifestEntry {
        ManifestEntry {
            ticket_id: TicketId::from_bytes([n; 16]),
            generation: 0,
            tier: 1,
            zones: 1,
            status,
            reentry: false,
            display_name: format!("Guest {n}"),
        }
    }

    fn setup() -> (SecretKey, KeyRing, KeyCertificate, EventId) {
        let root = SecretKey::from_seed([1; 32]);
        let key = SecretKey::from_seed([2; 32]);
        let event = EventId::from_bytes([3; 16]);
        let cert = root.certify(event, &key.public(), 0, u64::MAX);
        (key, KeyRing::new(root.public()), cert, event)
    }

    #[test]
    fn full_manifest_round_trips_and_delta_chains() {
        let (key, ring, cert, event) = setup();
        let mut entries = vec![entry(5, EntryStatus::Valid), entry(4, EntryStatus::Valid)];
        let d0 = genesis_digest(&event);
        let d1 = chain_digest(&d0, 1, &entries);
        let header = Header {
            event_id: event,
            version: 1,
            digest: d1,
            issued_at: 10,
            certs: std::slice::from_ref(&cert),
        };
        let bytes = Manifest::sign(&key, &header, &mut entries).unwrap();
        let m = Manifest::open(&bytes, &ring, &event).unwrap();
        assert_eq!(m.entries, entries, "entries come back sorted");
        let mut state = ManifestState::empty(event);
        state.replace(m.clone()).unwrap();

        let mut changed = vec![entry(4, EntryStatus::Revoked)];
        let d2 = chain_digest(&d1, 2, &changed);
        let h2 = Header {
            version: 2,
            digest: d2,
            certs: &[],
            ..header.clone()
        };
        let delta_bytes = ManifestDelta::sign(&key, &h2, 1, &d1, &mut changed).unwrap();
        assert!(
            delta_bytes.len() <= 512,
            "one-ticket delta is {} bytes",
            delta_bytes.len()
        );
        // The node knows the key from the full manifest's certificates.
        let mut node_ring = ring.clone();
        node_ring.insert(cert.clone()).unwrap();
        let delta = ManifestDelta::open(&delta_bytes, &node_ring, &event).unwrap();
        state.apply(delta.clone()).unwrap();
        assert_eq!(state.version(), 2);
        assert_eq!(
            state.entry(&TicketId::from_bytes([4; 16])).unwrap().status,
            EntryStatus::Revoked
        );
        // Applying it again is a gap: the state is already at 2.
        assert_eq!(
            state.apply(delta),
            Err(ManifestError::Gap { held: 2, base: 1 })
        );
        // A full manifest cannot roll the state back.
        assert!(matches!(state.replace(m), Err(ManifestError::Stale { .. })));
    }

    #[test]
    fn forged_and_foreign_manifests_are_refused() {
        let (key, ring, cert, event) = setup();
        let header = Header {
            event_id: event,
            version: 1,
            digest: [0; 32],
            issued_at: 10,
            certs: std::slice::from_ref(&cert),
        };
        let mut bytes = Manifest::sign(&key, &header, &mut [entry(1, EntryStatus::Valid)]).unwrap();
        assert_eq!(
            Manifest::open(&bytes, &ring, &EventId::from_bytes([9; 16])),
            Err(ManifestError::WrongEvent)
        );
        let n = bytes.len();
        bytes[n - 80] ^= 0x40;
        assert!(Manifest::open(&bytes, &ring, &event).is_err());
        // Signed by a key nobody certified.
        let rogue = SecretKey::from_seed([7; 32]);
        let forged = Manifest::sign(
            &rogue,
            &Header {
                certs: &[],
                ..header
            },
            &mut [entry(1, EntryStatus::Valid)],
        )
        .unwrap();
        assert_eq!(
            Manifest::open(&forged, &ring, &event),
            Err(ManifestError::UnknownSigner(rogue.key_id()))
        );
    }

    #[test]
    fn a_manifest_signed_by_a_retired_key_is_refused() {
        let (key, mut ring, cert, event) = setup();
        let root = SecretKey::from_seed([1; 32]);
        ring.retire(root.retire(event, key.key_id(), 5)).unwrap();
        let header = Header {
            event_id: event,
            version: 1,
            digest: [0; 32],
            issued_at: 10,
            certs: std::slice::from_ref(&cert),
        };
        let bytes = Manifest::sign(&key, &header, &mut [entry(1, EntryStatus::Valid)]).unwrap();
        assert_eq!(
            Manifest::open(&bytes, &ring, &event),
            Err(ManifestError::RetiredSigner(key.key_id())),
            "carrying the retired key's certificate again does not make it trusted"
        );
    }

    #[test]
    fn delta_with_wrong_base_digest_is_a_fork() {
        let (key, ring, cert, event) = setup();
        let mut ring = ring;
        ring.insert(cert).unwrap();
        let header = Header {
            event_id: event,
            version: 1,
            digest: [1; 32],
            issued_at: 10,
            certs: &[],
        };
        let bytes = ManifestDelta::sign(
            &key,
            &header,
            0,
            &[9; 32],
            &mut [entry(1, EntryStatus::Valid)],
        )
        .unwrap();
        let delta = ManifestDelta::open(&bytes, &ring, &event).unwrap();
        let mut state = ManifestState::empty(event);
        assert_eq!(state.apply(delta), Err(ManifestError::Fork(0)));
        assert_eq!(state.version(), 0, "a refused delta changes nothing");
    }

    #[test]
    fn door_state_travels_signed_in_layout_2_and_layout_1_says_nothing() {
        let (key, ring, cert, event) = setup();
        let header = Header {
            event_id: event,
            version: 1,
            digest: [1; 32],
            issued_at: 10,
            certs: std::slice::from_ref(&cert),
        };
        let v1 = Manifest::sign(&key, &header, &mut [entry(1, EntryStatus::Valid)]).unwrap();
        assert_eq!(Manifest::open(&v1, &ring, &event).unwrap().door, None);
        let mut bytes = Manifest::sign_with_door(
            &key,
            &header,
            DoorState::Ended,
            &mut [entry(1, EntryStatus::Valid)],
        )
        .unwrap();
        assert_eq!(bytes[2], MANIFEST_VERSION_DOOR);
        let m = Manifest::open(&bytes, &ring, &event).unwrap();
        assert_eq!(m.door, Some(DoorState::Ended));
        let mut state = ManifestState::empty(event);
        state.replace(m).unwrap();
        assert_eq!(
            state.door(),
            DoorNews {
                state: Some(DoorState::Ended),
                as_of: Some(10)
            }
        );
        state.confirm_current(70);
        assert_eq!(state.door().as_of, Some(70));
        // The door byte sits after the digest (2 + 1 + 16 + 8 + 8 + 32).
        bytes[67] = 9;
        assert!(
            Manifest::open(&bytes, &ring, &event).is_err(),
            "a changed door byte breaks the signature, and 9 is no state"
        );

        let mut ring = ring;
        ring.insert(cert.clone()).unwrap();
        let h2 = Header {
            version: 2,
            digest: [2; 32],
            certs: &[],
            ..header
        };
        let d = ManifestDelta::sign_with_door(&key, &h2, 1, &[1; 32], DoorState::Live, &mut [])
            .unwrap();
        let d = ManifestDelta::open(&d, &ring, &event).unwrap();
        assert_eq!(d.door, Some(DoorState::Live));
        state.apply(d).unwrap();
        assert_eq!(state.door().state, Some(DoorState::Live));
    }
}
