//! The device roster: which devices may record scans for an event, with the
//! ed25519 key each proved at enrollment, and when each was enrolled and
//! revoked.
//!
//! The cloud signs the roster with an event key and ships it to the event's
//! devices like the manifest: a full roster, or a delta naming the
//! `(version, digest)` it applies to, so a device that missed a version (or
//! whose cloud history forked) sees it and fetches the full roster. Every
//! replica checks every scan record it receives against its roster with
//! [`Roster::check_records`] before it believes it: unknown devices, bad
//! signatures and records a device made after its revocation are refused.
//! Layouts are in `docs/protocol.md`.

use crate::checkin::ScanRecord;
use crate::keys::{KeyRing, PublicKey, SecretKey};
use crate::manifest::ManifestError;
use crate::wire::{Reader, Writer};
use crate::{DecodeError, EventId, KeyId, NodeId, ScanId};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Magic of a full roster.
pub const ROSTER_MAGIC: [u8; 2] = *b"TR";
/// Magic of a roster delta.
pub const ROSTER_DELTA_MAGIC: [u8; 2] = *b"TQ";
/// Layout version of both.
pub const ROSTER_VERSION: u8 = 1;
/// Most devices one roster lists.
pub const MAX_DEVICES: u32 = 65_536;
/// Encoded length of one roster entry.
pub const ENTRY_LEN: usize = 16 + 32 + 8 + 8;

/// Errors of rosters share the manifest's kinds (decode, verify, stale, gap, fork).
pub type RosterError = ManifestError;

/// One device of the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterEntry {
    /// Its node id (the `node` of its scan ids).
    pub node_id: NodeId,
    /// The key it proved at enrollment; it signs every record it makes.
    pub public_key: PublicKey,
    /// When it was enrolled, unix ms.
    pub enrolled_at_ms: u64,
    /// When it was revoked, unix ms; records it made from then on are refused.
    pub revoked_at_ms: Option<u64>,
}

/// Why a record was refused by the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordRefusal {
    /// No device with this node id is enrolled for the event.
    #[error("scan {0}: no device with this node id is enrolled for the event")]
    UnknownDevice(ScanId),
    /// The signature is not the device's.
    #[error("scan {0}: the signature is not the recording device's")]
    BadSignature(ScanId),
    /// Made (by its clock) after the device was revoked.
    #[error("scan {0}: made after its device was revoked")]
    Revoked(ScanId),
    /// Claims this replica's own node id, which it never recorded.
    #[error("scan {0}: claims this node's own id but this node never recorded it")]
    OwnNode(ScanId),
}

impl RecordRefusal {
    /// The record refused.
    pub fn scan_id(&self) -> ScanId {
        match self {
            Self::UnknownDevice(id)
            | Self::BadSignature(id)
            | Self::Revoked(id)
            | Self::OwnNode(id) => *id,
        }
    }
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownDevice(_) => "unknown_device",
            Self::BadSignature(_) => "bad_record_signature",
            Self::Revoked(_) => "revoked_device",
            Self::OwnNode(_) => "own_node_id",
        }
    }
}

/// Digest of the empty roster (version 0) of an event.
pub fn genesis_digest(event_id: &EventId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"TKRC1 genesis");
    h.update(event_id.as_bytes());
    h.finalize().into()
}

/// Chain digest after one version step that changed `changed`:
/// `SHA-256("TKRC1" || prev || be64(version) || changed entries, by node id)`.
pub fn chain_digest(prev: &[u8; 32], version: u64, changed: &[RosterEntry]) -> [u8; 32] {
    let mut sorted: Vec<&RosterEntry> = changed.iter().collect();
    sorted.sort_by_key(|e| e.node_id);
    sorted.dedup_by_key(|e| e.node_id);
    let mut w = Writer::default();
    for e in sorted {
        write_entry(&mut w, e);
    }
    let mut h = Sha256::new();
    h.update(b"TKRC1");
    h.update(prev);
    h.update(version.to_be_bytes());
    h.update(w.into_inner());
    h.finalize().into()
}

fn write_entry(w: &mut Writer, e: &RosterEntry) {
    w.bytes(e.node_id.as_bytes());
    w.bytes(&e.public_key.to_bytes());
    w.u64(e.enrolled_at_ms);
    w.u64(e.revoked_at_ms.unwrap_or(0));
}

fn read_entries(r: &mut Reader<'_>) -> Result<Vec<RosterEntry>, DecodeError> {
    let n = r.u32()?;
    if n > MAX_DEVICES {
        return Err(DecodeError::TooLarge);
    }
    if r.remaining() < n as usize * ENTRY_LEN {
        return Err(DecodeError::Truncated);
    }
    let mut out: Vec<RosterEntry> = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let node_id = NodeId::from_bytes(r.array()?);
        if out.last().is_some_and(|p| p.node_id >= node_id) {
            return Err(DecodeError::Invalid(
                "roster entries not in ascending node order",
            ));
        }
        let public_key = PublicKey::from_bytes(&r.array()?)?;
        let enrolled_at_ms = r.u64()?;
        let revoked = r.u64()?;
        if revoked != 0 && revoked < enrolled_at_ms {
            return Err(DecodeError::Invalid(
                "device revoked before it was enrolled",
            ));
        }
        out.push(RosterEntry {
            node_id,
            public_key,
            enrolled_at_ms,
            revoked_at_ms: (revoked != 0).then_some(revoked),
        });
    }
    Ok(out)
}

fn write_entries(w: &mut Writer, entries: &mut [RosterEntry]) -> Result<(), RosterError> {
    entries.sort_by_key(|e| e.node_id);
    if entries.windows(2).any(|p| p[0].node_id == p[1].node_id) {
        return Err(RosterError::Encode("duplicate node id"));
    }
    if entries.len() > MAX_DEVICES as usize {
        return Err(RosterError::Encode("too many devices"));
    }
    w.u32(entries.len() as u32);
    for e in entries.iter() {
        if e.revoked_at_ms
            .is_some_and(|r| r < e.enrolled_at_ms || r == 0)
        {
            return Err(RosterError::Encode("revocation before enrollment"));
        }
        write_entry(w, e);
    }
    Ok(())
}

/// What a roster or roster delta says, signature checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRoster {
    /// The event.
    pub event_id: EventId,
    /// For a delta, the `(version, digest)` it applies to; `None` for a full roster.
    pub base: Option<(u64, [u8; 32])>,
    /// Version after it.
    pub version: u64,
    /// Chain digest at `version`.
    pub digest: [u8; 32],
    /// Unix seconds.
    pub issued_at: u64,
    /// Every device (full) or the changed ones (delta), by node id.
    pub entries: Vec<RosterEntry>,
    /// Key that signed it.
    pub signer: KeyId,
}

/// Inputs of [`SignedRoster::sign`].
#[derive(Clone, Copy, Debug)]
pub struct RosterHeader {
    /// The event.
    pub event_id: EventId,
    /// Version being published.
    pub version: u64,
    /// Chain digest at `version`.
    pub digest: [u8; 32],
    /// Unix seconds.
    pub issued_at: u64,
}

impl SignedRoster {
    /// Encodes and signs a full roster (`base = None`) or a delta from `base`.
    pub fn sign(
        key: &SecretKey,
        header: &RosterHeader,
        base: Option<(u64, [u8; 32])>,
        entries: &mut [RosterEntry],
    ) -> Result<Vec<u8>, RosterError> {
        let mut w = Writer::with_capacity(160 + entries.len() * ENTRY_LEN);
        match base {
            None => {
                w.bytes(&ROSTER_MAGIC);
                w.u8(ROSTER_VERSION);
                w.bytes(header.event_id.as_bytes());
            }
            Some((v, d)) => {
                if header.version <= v {
                    return Err(RosterError::Encode("delta must advance the version"));
                }
                w.bytes(&ROSTER_DELTA_MAGIC);
                w.u8(ROSTER_VERSION);
                w.bytes(header.event_id.as_bytes());
                w.u64(v);
                w.bytes(&d);
            }
        }
        w.u64(header.version);
        w.bytes(&header.digest);
        w.u64(header.issued_at);
        write_entries(&mut w, entries)?;
        w.bytes(&key.key_id().0);
        let sig = key.sign(&w.buf);
        w.bytes(&sig);
        Ok(w.into_inner())
    }

    /// Decodes a full roster or a delta, checks it is for `event_id` and
    /// verifies its signature by an event key certified in `ring` (valid at
    /// `issued_at`) before returning anything.
    pub fn open(bytes: &[u8], ring: &KeyRing, event_id: &EventId) -> Result<Self, RosterError> {
        let mut r = Reader::new(bytes);
        let magic = r.array::<2>()?;
        let delta = match magic {
            ROSTER_MAGIC => false,
            ROSTER_DELTA_MAGIC => true,
            _ => return Err(DecodeError::BadMagic.into()),
        };
        let layout = r.u8()?;
        if layout != ROSTER_VERSION {
            return Err(DecodeError::UnsupportedVersion(layout).into());
        }
        let event = EventId::from_bytes(r.array()?);
        let base = if delta {
            Some((r.u64()?, r.array()?))
        } else {
            None
        };
        let version = r.u64()?;
        let digest = r.array()?;
        let issued_at = r.u64()?;
        if base.is_some_and(|(v, _)| version <= v) {
            return Err(DecodeError::Invalid("delta does not advance the version").into());
        }
        let entries = read_entries(&mut r)?;
        let signer = KeyId(r.array()?);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(r.take(64)?);
        r.finish()?;
        if &event != event_id {
            return Err(RosterError::WrongEvent);
        }
        let key = ring
            .key_for(&signer, event_id, issued_at)
            .map_err(|_| RosterError::UnknownSigner(signer))?;
        key.verify(&bytes[..bytes.len() - 64], &signature)?;
        Ok(Self {
            event_id: event,
            base,
            version,
            digest,
            issued_at,
            entries,
            signer,
        })
    }
}

/// A replica's roster: the devices it believes, at one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    event_id: EventId,
    version: u64,
    digest: [u8; 32],
    entries: BTreeMap<NodeId, RosterEntry>,
}

impl Roster {
    /// The empty roster (version 0): it believes no device.
    pub fn empty(event_id: EventId) -> Self {
        Self {
            event_id,
            version: 0,
            digest: genesis_digest(&event_id),
            entries: BTreeMap::new(),
        }
    }
    /// A roster from stored parts (a store that saved an applied roster).
    pub fn from_parts(
        event_id: EventId,
        version: u64,
        digest: [u8; 32],
        entries: impl IntoIterator<Item = RosterEntry>,
    ) -> Self {
        Self {
            event_id,
            version,
            digest,
            entries: entries.into_iter().map(|e| (e.node_id, e)).collect(),
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
    /// One device.
    pub fn entry(&self, node: &NodeId) -> Option<&RosterEntry> {
        self.entries.get(node)
    }
    /// Every device, by node id.
    pub fn entries(&self) -> impl Iterator<Item = &RosterEntry> {
        self.entries.values()
    }

    /// Applies a verified full roster or delta; a refused one changes
    /// nothing. A full roster must not go back (lower version, or the same
    /// version with another digest); a delta must start at the held
    /// `(version, digest)`.
    pub fn apply(&mut self, signed: SignedRoster) -> Result<(), RosterError> {
        if signed.event_id != self.event_id {
            return Err(RosterError::WrongEvent);
        }
        match signed.base {
            None => {
                if signed.version < self.version
                    || (signed.version == self.version && signed.digest != self.digest)
                {
                    return Err(RosterError::Stale {
                        held: self.version,
                        got: signed.version,
                    });
                }
                self.entries = signed.entries.into_iter().map(|e| (e.node_id, e)).collect();
            }
            Some((base, base_digest)) => {
                if base != self.version {
                    return Err(RosterError::Gap {
                        held: self.version,
                        base,
                    });
                }
                if base_digest != self.digest {
                    return Err(RosterError::Fork(self.version));
                }
                for e in signed.entries {
                    self.entries.insert(e.node_id, e);
                }
            }
        }
        self.version = signed.version;
        self.digest = signed.digest;
        Ok(())
    }

    /// Where one record stands, signature aside: its device's entry, or
    /// why the record is refused. A record's time is its device's HLC, so a
    /// device whose key is stolen can back-date records to before its
    /// revocation; `enrolled_at_ms` is informational (devices enrolled
    /// before their clock was set would otherwise be refused).
    pub fn standing(&self, record: &ScanRecord) -> Result<&RosterEntry, RecordRefusal> {
        let entry = self
            .entries
            .get(&record.id.node)
            .ok_or(RecordRefusal::UnknownDevice(record.id))?;
        let made = record.hlc.physical_ms();
        if entry.revoked_at_ms.is_some_and(|at| made >= at) {
            return Err(RecordRefusal::Revoked(record.id));
        }
        Ok(entry)
    }

    /// Checks every record: a device of the roster, not revoked when it
    /// made it, signed by that device. Signatures are verified in one batch
    /// (and one by one only to name the bad one when the batch fails).
    pub fn check_records<'a>(
        &self,
        records: impl IntoIterator<Item = &'a ScanRecord>,
    ) -> Result<(), RecordRefusal> {
        let mut batch: Vec<(&ScanRecord, &PublicKey)> = Vec::new();
        for r in records {
            batch.push((r, &self.standing(r)?.public_key));
        }
        verify_signatures(&batch)
    }
}

/// Verifies `(record, key)` pairs, in one batch when there are several.
pub fn verify_signatures(batch: &[(&ScanRecord, &PublicKey)]) -> Result<(), RecordRefusal> {
    if batch.len() > 1 && batch_ok(batch) {
        return Ok(());
    }
    for (r, key) in batch {
        r.verify(key)
            .map_err(|_| RecordRefusal::BadSignature(r.id))?;
    }
    Ok(())
}

/// One batch verification of every signature (ed25519-dalek `batch`). Any
/// failure sends the caller to the strict one-by-one check.
fn batch_ok(batch: &[(&ScanRecord, &PublicKey)]) -> bool {
    let messages: Vec<Vec<u8>> = batch.iter().map(|(r, _)| r.signed_bytes()).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures: Vec<ed25519_dalek::Signature> = batch
        .iter()
        .map(|(r, _)| ed25519_dalek::Signature::from_bytes(&r.signature.0))
        .collect();
    let keys: Vec<ed25519_dalek::VerifyingKey> =
        batch.iter().map(|(_, k)| *k.verifying()).collect();
    ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_ok()
}
