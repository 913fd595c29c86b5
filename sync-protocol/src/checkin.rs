//! The check-in CRDT.
//!
//! Every scan is an immutable [`ScanRecord`] keyed by its [`ScanId`] (node id
//! and per-node sequence number). A replica's state is the grow-only set of
//! records it holds; merge is set union, so it is commutative, associative and
//! idempotent. A [`Summary`] (a `crdts::VClock` of the contiguous prefix held
//! per node, plus any sequence numbers held beyond a gap) says exactly what a
//! replica holds, so peers exchange only what the other lacks.
//!
//! A deterministic fold over a ticket's admitted records, in HLC order (ties
//! broken by scan id), gives its state: never seen, inside or outside. An entry
//! admitted while the fold says the ticket is already inside is a double
//! admission: two gates admitted the ticket without seeing each other's scan
//! (a partition) and both records are kept and flagged, never dropped.

use crate::decision::{CheckinView, Outcome};
use crate::hlc::Hlc;
use crate::keys::{PublicKey, SecretKey};
use crate::wire::{Reader, Writer};
use crate::{DecodeError, EventId, NodeId, ScanId, TicketId, VerifyError};
use crdts::{CmRDT, CvRDT, Dot, VClock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Longest gate label or operator name, in bytes of UTF-8.
pub const MAX_LABEL: usize = 64;
/// Fixed part of an encoded scan record (before the two strings).
pub const RECORD_FIXED_LEN: usize = 16 + 8 + 16 + 16 + 2 + 1 + 8 + 1 + 1;
/// Largest per-node sequence number (2^48; no node scans that often).
pub const MAX_SEQ: u64 = 1 << 48;
/// Magic of a signed scan record.
pub const RECORD_MAGIC: [u8; 2] = *b"TC";
/// Layout version of a signed scan record (version 1 was the unsigned body).
pub const RECORD_VERSION: u8 = 2;
/// Fixed part of a signed record: magic, version, body fixed part, signature.
pub const SIGNED_RECORD_FIXED_LEN: usize = 3 + RECORD_FIXED_LEN + 64;
const NO_ZONE: u8 = 0xff;

/// The recording device's ed25519 signature over a record (all zeros until
/// [`ScanRecord::sign`] is called). Serialised as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordSignature(pub [u8; 64]);

impl RecordSignature {
    /// No signature yet.
    pub const UNSIGNED: Self = Self([0; 64]);
    /// Whether this is [`Self::UNSIGNED`].
    pub fn is_unsigned(&self) -> bool {
        self.0 == [0; 64]
    }
}

impl Default for RecordSignature {
    fn default() -> Self {
        Self::UNSIGNED
    }
}

impl std::fmt::Debug for RecordSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecordSignature({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl Serialize for RecordSignature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(128);
        for b in self.0 {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }
}

impl<'de> Deserialize<'de> for RecordSignature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = text.as_bytes();
        if bytes.len() != 128 {
            return Err(serde::de::Error::custom("signature must be 128 hex digits"));
        }
        let mut out = [0u8; 64];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).map_err(serde::de::Error::custom)?;
            out[i] = u8::from_str_radix(hex, 16).map_err(serde::de::Error::custom)?;
        }
        Ok(Self(out))
    }
}

/// Which way the holder passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Into the venue (or zone).
    Entry,
    /// Out of it.
    Exit,
}

/// One scan, immutable once recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// Recording node and its sequence number.
    pub id: ScanId,
    /// The event.
    pub event_id: EventId,
    /// The ticket scanned.
    pub ticket_id: TicketId,
    /// Credential generation presented.
    pub generation: u16,
    /// Entry or exit.
    pub direction: Direction,
    /// When, on the recording node's hybrid logical clock.
    pub hlc: Hlc,
    /// Zone of the gate, if it guards one (0..=31).
    pub zone: Option<u8>,
    /// What the gate decided.
    pub outcome: Outcome,
    /// Gate label, e.g. "North 2" (at most 64 bytes).
    pub gate: String,
    /// Staff member operating a handheld scanner, empty for a fixed gate.
    pub operator: String,
    /// The recording device's signature over [`ScanRecord::signed_bytes`].
    #[serde(default)]
    pub signature: RecordSignature,
}

impl ScanRecord {
    /// Rejects records no honest node produces.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.id.seq == 0 || self.id.seq > MAX_SEQ {
            return Err(DecodeError::Invalid(
                "scan sequence number outside 1..=2^48",
            ));
        }
        if self.gate.len() > MAX_LABEL || self.operator.len() > MAX_LABEL {
            return Err(DecodeError::Invalid(
                "gate or operator label longer than 64 bytes",
            ));
        }
        if matches!(self.zone, Some(z) if z >= 32) {
            return Err(DecodeError::Invalid("zone out of range"));
        }
        Ok(())
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.bytes(self.id.node.as_bytes());
        w.u64(self.id.seq);
        w.bytes(self.event_id.as_bytes());
        w.bytes(self.ticket_id.as_bytes());
        w.u16(self.generation);
        w.u8(match self.direction {
            Direction::Entry => 0,
            Direction::Exit => 1,
        });
        w.u64(self.hlc.0);
        w.u8(self.zone.unwrap_or(NO_ZONE));
        w.u8(self.outcome.code());
        w.short_str(&self.gate);
        w.short_str(&self.operator);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let node = NodeId::from_bytes(r.array()?);
        let seq = r.u64()?;
        let event_id = EventId::from_bytes(r.array()?);
        let ticket_id = TicketId::from_bytes(r.array()?);
        let generation = r.u16()?;
        let direction = match r.u8()? {
            0 => Direction::Entry,
            1 => Direction::Exit,
            _ => return Err(DecodeError::Invalid("unknown scan direction")),
        };
        let hlc = Hlc(r.u64()?);
        let zone = match r.u8()? {
            NO_ZONE => None,
            z => Some(z),
        };
        let outcome =
            Outcome::from_code(r.u8()?).ok_or(DecodeError::Invalid("unknown scan outcome"))?;
        let record = Self {
            id: ScanId { node, seq },
            event_id,
            ticket_id,
            generation,
            direction,
            hlc,
            zone,
            outcome,
            gate: r.short_str()?,
            operator: r.short_str()?,
            signature: RecordSignature::UNSIGNED,
        };
        record.validate()?;
        Ok(record)
    }

    /// The record's content: the layout-1 body (`docs/protocol.md`), without
    /// the signature. Stores keep this form (so earlier releases still read
    /// it) next to the signature; idempotency compares it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(RECORD_FIXED_LEN + 2 + self.gate.len() + self.operator.len());
        self.write(&mut w);
        w.into_inner()
    }

    /// Parses and validates a layout-1 body; the signature is unset.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let record = Self::read(&mut r)?;
        r.finish()?;
        Ok(record)
    }

    /// A stored body with its stored signature.
    pub fn from_parts(body: &[u8], signature: [u8; 64]) -> Result<Self, DecodeError> {
        let mut record = Self::from_bytes(body)?;
        record.signature = RecordSignature(signature);
        Ok(record)
    }

    /// The bytes the device signs: magic `TC`, version 2, then the body.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(
            SIGNED_RECORD_FIXED_LEN + 2 + self.gate.len() + self.operator.len(),
        );
        w.bytes(&RECORD_MAGIC);
        w.u8(RECORD_VERSION);
        self.write(&mut w);
        w.into_inner()
    }

    /// Signs the record with its device's key (the one proven at enrollment).
    pub fn sign(&mut self, key: &SecretKey) {
        self.signature = RecordSignature(key.sign(&self.signed_bytes()));
    }

    /// Checks the signature strictly against `key`.
    pub fn verify(&self, key: &PublicKey) -> Result<(), VerifyError> {
        key.verify(&self.signed_bytes(), &self.signature.0)
    }

    /// Whether two records say the same thing (signatures aside: a valid
    /// signature over the same content is the same record).
    pub fn same_content(&self, other: &Self) -> bool {
        Self {
            signature: RecordSignature::UNSIGNED,
            ..self.clone()
        } == Self {
            signature: RecordSignature::UNSIGNED,
            ..other.clone()
        }
    }

    pub(crate) fn write_signed(&self, w: &mut Writer) {
        w.bytes(&RECORD_MAGIC);
        w.u8(RECORD_VERSION);
        self.write(w);
        w.bytes(&self.signature.0);
    }

    pub(crate) fn read_signed(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.array::<2>()? != RECORD_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8()?;
        if version != RECORD_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let mut record = Self::read(r)?;
        record.signature = RecordSignature(r.array()?);
        Ok(record)
    }

    /// The signed wire form (layout 2): `TC`, `02`, body, 64-byte signature
    /// over every preceding byte.
    pub fn to_signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(
            SIGNED_RECORD_FIXED_LEN + 2 + self.gate.len() + self.operator.len(),
        );
        self.write_signed(&mut w);
        w.into_inner()
    }

    /// Parses the signed wire form (the signature is checked against a
    /// roster by [`crate::roster::Roster::check_records`]).
    pub fn from_signed_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let record = Self::read_signed(&mut r)?;
        r.finish()?;
        Ok(record)
    }

    fn fold_key(&self) -> (Hlc, ScanId) {
        (self.hlc, self.id)
    }
}

/// Where a ticket is, according to the admitted scans seen so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TicketState {
    /// No admitted scan.
    NeverSeen,
    /// Last admitted scan was an entry.
    Inside {
        /// That scan.
        scan: ScanId,
        /// Its time.
        since: Hlc,
    },
    /// Last admitted scan was an exit.
    Outside {
        /// That scan.
        scan: ScanId,
        /// Its time.
        since: Hlc,
    },
}

/// Two admitted entries of one ticket with no exit between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubleAdmission {
    /// The ticket.
    pub ticket_id: TicketId,
    /// The entry that was first in HLC order.
    pub first: ScanId,
    /// The entry admitted while the ticket was already inside.
    pub second: ScanId,
}

/// The fold of one ticket's records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFold {
    /// Current state.
    pub state: TicketState,
    /// Admitted entries.
    pub entries: u32,
    /// Double admissions found.
    pub double_admissions: Vec<DoubleAdmission>,
}

/// Folds one ticket's records (any order, any mix; rejected scans are
/// ignored) into its state. Deterministic: the same set gives the same fold.
pub fn fold_ticket<'a>(records: impl IntoIterator<Item = &'a ScanRecord>) -> TicketFold {
    let mut admitted: Vec<&ScanRecord> = records
        .into_iter()
        .filter(|r| r.outcome.is_admit())
        .collect();
    admitted.sort_by_key(|r| r.fold_key());
    let mut fold = TicketFold {
        state: TicketState::NeverSeen,
        entries: 0,
        double_admissions: Vec::new(),
    };
    for r in admitted {
        match (r.direction, fold.state) {
            (Direction::Entry, TicketState::Inside { scan, .. }) => {
                fold.double_admissions.push(DoubleAdmission {
                    ticket_id: r.ticket_id,
                    first: scan,
                    second: r.id,
                });
                fold.entries += 1;
                fold.state = TicketState::Inside {
                    scan: r.id,
                    since: r.hlc,
                };
            }
            (Direction::Entry, _) => {
                fold.entries += 1;
                fold.state = TicketState::Inside {
                    scan: r.id,
                    since: r.hlc,
                };
            }
            (Direction::Exit, _) => {
                fold.state = TicketState::Outside {
                    scan: r.id,
                    since: r.hlc,
                };
            }
        }
    }
    fold
}

/// What adding one sequence number does to a node's coverage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    /// Already within the prefix: nothing changes.
    Held,
    /// Beyond a gap: it becomes an extra.
    Extra,
    /// It extends the prefix, which (after absorbing the extras that now
    /// follow it) ends here.
    Prefix(u64),
}

/// The summary algorithm every replica uses (in memory here, in SQL in the
/// gate node and the cloud): with `prefix` held contiguously, adding `seq`
/// either changes nothing, adds an extra, or advances the prefix through
/// every following extra; `take_extra(s)` removes extra `s` and says
/// whether it was held.
pub fn advance(prefix: u64, seq: u64, mut take_extra: impl FnMut(u64) -> bool) -> Advance {
    if seq <= prefix {
        return Advance::Held;
    }
    if seq != prefix + 1 {
        return Advance::Extra;
    }
    let mut next = seq;
    while take_extra(next + 1) {
        next += 1;
    }
    Advance::Prefix(next)
}

/// Exactly which records a replica holds: per node, the contiguous prefix
/// `1..=n` (a `crdts::VClock`) plus any sequence numbers held beyond a gap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Contiguous prefix per node.
    pub vv: VClock<NodeId>,
    /// Sequence numbers held above the prefix (never `prefix + 1`).
    pub extras: BTreeMap<NodeId, BTreeSet<u64>>,
}

impl Summary {
    /// Whether the replica holds `id`.
    pub fn has(&self, id: &ScanId) -> bool {
        id.seq <= self.vv.get(&id.node)
            || self
                .extras
                .get(&id.node)
                .is_some_and(|s| s.contains(&id.seq))
    }

    /// Whether `other` holds some record this summary does not.
    pub fn lacks_any_of(&self, other: &Summary) -> bool {
        // `prefix + 1` is never held beyond the prefix, so a longer prefix
        // elsewhere always includes a record missing here.
        other.vv.dots.iter().any(|(n, c)| *c > self.vv.get(n))
            || other.extras.iter().any(|(node, seqs)| {
                seqs.iter().any(|seq| {
                    !self.has(&ScanId {
                        node: *node,
                        seq: *seq,
                    })
                })
            })
    }

    /// Records that the replica now holds `id` (the one summary algorithm:
    /// advance the prefix, absorb extras; see [`advance`]).
    pub fn add(&mut self, id: ScanId) {
        let prefix = self.vv.get(&id.node);
        let extras = self.extras.entry(id.node).or_default();
        let step = advance(prefix, id.seq, |seq| extras.remove(&seq));
        match step {
            Advance::Held => {}
            Advance::Extra => {
                extras.insert(id.seq);
            }
            Advance::Prefix(next) => self.vv.apply(Dot::new(id.node, next)),
        }
        if extras.is_empty() {
            self.extras.remove(&id.node);
        }
    }
}

/// Why records were refused; when it is returned nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckinError {
    /// A record for another event.
    #[error("scan {0} is for another event")]
    WrongEvent(ScanId),
    /// Two different records with one scan id: a node equivocated or a store is corrupt.
    #[error("scan {0} arrived with different content than the copy held")]
    Conflict(ScanId),
    /// A record no honest node produces.
    #[error("scan {0} is invalid: {1}")]
    Invalid(ScanId, DecodeError),
}

/// What applying a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Records that were new.
    pub new: usize,
    /// Records already held (ignored).
    pub duplicate: usize,
    /// Records refused but kept as evidence (made by a revoked device
    /// after its revocation); stores only, the in-memory log refuses.
    #[serde(default)]
    pub refused: usize,
    /// Second copies of held scan ids with other content, kept as
    /// evidence; stores only, the in-memory log refuses the batch.
    #[serde(default)]
    pub conflicts: usize,
}

/// One replica of an event's check-in set. Two replicas are equal when they
/// hold the same records (the summary and index are derived from them).
#[derive(Clone, Debug)]
pub struct CheckinLog {
    event_id: EventId,
    records: BTreeMap<ScanId, ScanRecord>,
    summary: Summary,
    by_ticket: HashMap<TicketId, Vec<ScanId>>,
}

impl CheckinLog {
    /// An empty replica.
    pub fn new(event_id: EventId) -> Self {
        Self {
            event_id,
            records: BTreeMap::new(),
            summary: Summary::default(),
            by_ticket: HashMap::new(),
        }
    }
    /// The event.
    pub fn event_id(&self) -> EventId {
        self.event_id
    }
    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    /// All records in scan-id order.
    pub fn records(&self) -> impl Iterator<Item = &ScanRecord> {
        self.records.values()
    }
    /// One record.
    pub fn get(&self, id: &ScanId) -> Option<&ScanRecord> {
        self.records.get(id)
    }
    /// What this replica holds.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
    /// The next sequence number for `node`'s own scans.
    pub fn next_seq(&self, node: NodeId) -> u64 {
        let last = ScanId {
            node,
            seq: u64::MAX,
        };
        self.records
            .range(..=last)
            .next_back()
            .filter(|(id, _)| id.node == node)
            .map_or(1, |(id, _)| id.seq + 1)
    }

    fn check(&self, record: &ScanRecord) -> Result<bool, CheckinError> {
        if record.event_id != self.event_id {
            return Err(CheckinError::WrongEvent(record.id));
        }
        record
            .validate()
            .map_err(|e| CheckinError::Invalid(record.id, e))?;
        match self.records.get(&record.id) {
            Some(held) if held.same_content(record) => Ok(false),
            Some(_) => Err(CheckinError::Conflict(record.id)),
            None => Ok(true),
        }
    }

    fn insert_unchecked(&mut self, record: ScanRecord) {
        self.summary.add(record.id);
        self.by_ticket
            .entry(record.ticket_id)
            .or_default()
            .push(record.id);
        self.records.insert(record.id, record);
    }

    /// Adds one record (a local scan, or one received).
    pub fn insert(&mut self, record: ScanRecord) -> Result<ApplyReport, CheckinError> {
        self.apply(std::iter::once(record))
    }

    /// Adds a batch, all or nothing: if any record is for another event,
    /// invalid, or conflicts with a held record or with another record in the
    /// batch, nothing is applied.
    pub fn apply(
        &mut self,
        records: impl IntoIterator<Item = ScanRecord>,
    ) -> Result<ApplyReport, CheckinError> {
        let mut fresh: BTreeMap<ScanId, ScanRecord> = BTreeMap::new();
        let mut report = ApplyReport::default();
        for record in records {
            if !self.check(&record)? {
                report.duplicate += 1;
                continue;
            }
            match fresh.get(&record.id) {
                Some(other) if !other.same_content(&record) => {
                    return Err(CheckinError::Conflict(record.id));
                }
                Some(_) => report.duplicate += 1,
                None => {
                    fresh.insert(record.id, record);
                }
            }
        }
        report.new = fresh.len();
        for record in fresh.into_values() {
            self.insert_unchecked(record);
        }
        Ok(report)
    }

    /// Records this replica holds that a replica with `their` summary lacks,
    /// at most `limit`, in scan-id order.
    pub fn missing_for(&self, their: &Summary, limit: usize) -> Vec<ScanRecord> {
        let nodes: BTreeSet<&NodeId> = self
            .summary
            .vv
            .dots
            .keys()
            .chain(self.summary.extras.keys())
            .collect();
        let mut out = Vec::new();
        for node in nodes {
            let from = ScanId {
                node: *node,
                seq: their.vv.get(node).saturating_add(1),
            };
            let to = ScanId {
                node: *node,
                seq: u64::MAX,
            };
            for (id, record) in self.records.range(from..=to) {
                if out.len() >= limit {
                    return out;
                }
                if !their.has(id) {
                    out.push(record.clone());
                }
            }
        }
        out
    }

    /// The fold of one ticket.
    pub fn fold(&self, ticket: &TicketId) -> TicketFold {
        let ids = self.by_ticket.get(ticket).map(Vec::as_slice).unwrap_or(&[]);
        fold_ticket(ids.iter().filter_map(|id| self.records.get(id)))
    }

    /// Every double admission, by ticket id.
    pub fn double_admissions(&self) -> Vec<DoubleAdmission> {
        let mut tickets: Vec<&TicketId> = self.by_ticket.keys().collect();
        tickets.sort();
        tickets
            .into_iter()
            .flat_map(|t| self.fold(t).double_admissions)
            .collect()
    }
}

impl PartialEq for CheckinLog {
    fn eq(&self, other: &Self) -> bool {
        self.event_id == other.event_id && self.records == other.records
    }
}

impl Eq for CheckinLog {}

impl CheckinView for CheckinLog {
    fn ticket_state(&self, ticket: &TicketId) -> TicketState {
        self.fold(ticket).state
    }
}

impl CvRDT for CheckinLog {
    type Validation = CheckinError;

    fn validate_merge(&self, other: &Self) -> Result<(), CheckinError> {
        if other.event_id != self.event_id {
            return other
                .records
                .keys()
                .next()
                .map_or(Ok(()), |id| Err(CheckinError::WrongEvent(*id)));
        }
        for record in other.records.values() {
            self.check(record)?;
        }
        Ok(())
    }

    /// Set union. Call [`CvRDT::validate_merge`] first: records that conflict
    /// with held ones are skipped here, never overwritten.
    fn merge(&mut self, other: Self) {
        for record in other.records.into_values() {
            if let Ok(true) = self.check(&record) {
                self.insert_unchecked(record);
            }
        }
    }
}
