//! Sans-IO check-in sync: messages and the functions that make and take them.
//!
//! One message type serves every step. It carries the sender's [`Summary`]
//! ("what I have") and records the receiver lacks ("what you lack"):
//!
//! 1. A sends `log.sync_start()`: its summary, no records.
//! 2. B calls `log.sync_receive(msg)`: applies the records (none yet) and
//!    answers with its summary plus the records A lacks, if either side lacks
//!    anything.
//! 3. A calls `sync_receive` on that answer, and so on until a side has
//!    nothing to say (`reply == None`). Each step sends at most `limit`
//!    records, so a long catch-up is a few round trips, never one giant one.
//!
//! A new admission is pushed at once with [`CheckinLog::sync_push`]. Any
//! transport moves the bytes; [`seal`] and [`open`] add the sender's node id
//! and an HMAC-SHA256 tag under a key shared by the gates of one event, so a
//! stranger on the venue LAN cannot inject scans.

use crate::checkin::{ApplyReport, CheckinError, CheckinLog, MAX_SEQ, ScanRecord, Summary};
use crate::wire::{Reader, Writer};
use crate::{DecodeError, EventId, NodeId};
use crdts::{CmRDT, Dot};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Magic of a sync message.
pub const SYNC_MAGIC: [u8; 2] = *b"TS";
/// Magic of a sealed envelope.
pub const ENVELOPE_MAGIC: [u8; 2] = *b"TE";
/// Layout version of a sync message (2: records carry their device's
/// signature; version 1 carried unsigned records).
pub const SYNC_VERSION: u8 = 2;
/// Layout version of the envelope (2: roster key version, timestamp and
/// nonce; version 1 had none of them).
pub const ENVELOPE_VERSION: u8 = 2;
/// How far an envelope's timestamp may be from the receiver's clock.
pub const REPLAY_WINDOW_MS: u64 = 60_000;
/// Most nonces a [`ReplayGuard`] remembers (beyond that it refuses
/// envelopes until old ones age out of the window).
pub const MAX_REMEMBERED_NONCES: usize = 65_536;
/// Fixed bytes of an envelope around its payload.
pub const ENVELOPE_OVERHEAD: usize = 2 + 1 + 16 + 8 + 8 + 16 + 4 + 32;
/// Most records in one message.
pub const MAX_RECORDS_PER_MESSAGE: usize = 10_000;
/// Most nodes in one summary.
pub const MAX_NODES: usize = 4_096;
/// Most sequence numbers held beyond a gap, per node, in one summary.
pub const MAX_EXTRAS: usize = 4_096;
/// Largest sealed envelope accepted (a full message of long records).
pub const MAX_ENVELOPE_LEN: usize = 8 << 20;

/// One sync step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncMessage {
    /// The event both replicas are for.
    pub event_id: EventId,
    /// What the sender holds.
    pub have: Summary,
    /// Records the receiver lacks (or a fresh scan being pushed).
    pub records: Vec<ScanRecord>,
}

impl SyncMessage {
    /// The wire form (layout in `docs/protocol.md`). At most
    /// [`MAX_RECORDS_PER_MESSAGE`] records, [`MAX_NODES`] summary nodes and
    /// [`MAX_EXTRAS`] extras per node are written; callers batch records.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.records.len() * 96);
        w.bytes(&SYNC_MAGIC);
        w.u8(SYNC_VERSION);
        w.bytes(self.event_id.as_bytes());
        // A summary may say less than the replica holds (never more): the
        // peer then re-sends what was left out, and duplicates are harmless.
        // So nodes and extras beyond the decoder's limits are left out rather
        // than producing a message no peer accepts.
        let nodes: std::collections::BTreeSet<&NodeId> = self
            .have
            .vv
            .dots
            .keys()
            .chain(self.have.extras.keys())
            .take(MAX_NODES)
            .collect();
        w.u16(nodes.len() as u16);
        for node in nodes {
            w.bytes(node.as_bytes());
            w.u64(self.have.vv.get(node));
            let extras: Vec<u64> = self
                .have
                .extras
                .get(node)
                .into_iter()
                .flatten()
                .take(MAX_EXTRAS)
                .copied()
                .collect();
            w.u16(extras.len() as u16);
            for seq in extras {
                w.u64(seq);
            }
        }
        let records = &self.records[..self.records.len().min(MAX_RECORDS_PER_MESSAGE)];
        w.u32(records.len() as u32);
        for r in records {
            r.write_signed(&mut w);
        }
        w.into_inner()
    }

    /// Parses and validates the wire form without trusting any count in it.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.array::<2>()? != SYNC_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8()?;
        if version != SYNC_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let event_id = EventId::from_bytes(r.array()?);
        let n = usize::from(r.u16()?);
        if n > MAX_NODES {
            return Err(DecodeError::TooLarge);
        }
        let mut have = Summary::default();
        let mut prev: Option<NodeId> = None;
        for _ in 0..n {
            let node = NodeId::from_bytes(r.array()?);
            if prev.is_some_and(|p| p >= node) {
                return Err(DecodeError::Invalid("summary nodes not in ascending order"));
            }
            prev = Some(node);
            let prefix = r.u64()?;
            if prefix > MAX_SEQ {
                return Err(DecodeError::Invalid("summary counter out of range"));
            }
            if prefix > 0 {
                have.vv.apply(Dot::new(node, prefix));
            }
            let e = usize::from(r.u16()?);
            if e > MAX_EXTRAS {
                return Err(DecodeError::TooLarge);
            }
            let mut last = prefix + 1;
            for _ in 0..e {
                let seq = r.u64()?;
                if seq <= last || seq > MAX_SEQ {
                    return Err(DecodeError::Invalid(
                        "summary extras not ascending above the prefix",
                    ));
                }
                last = seq;
                have.extras.entry(node).or_default().insert(seq);
            }
            if prefix == 0 && e == 0 {
                return Err(DecodeError::Invalid("empty summary entry"));
            }
        }
        let count = r.u32()? as usize;
        if count > MAX_RECORDS_PER_MESSAGE {
            return Err(DecodeError::TooLarge);
        }
        if r.remaining() < count * crate::checkin::SIGNED_RECORD_FIXED_LEN {
            return Err(DecodeError::Truncated);
        }
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            let record = ScanRecord::read_signed(&mut r)?;
            if record.event_id != event_id {
                return Err(DecodeError::Invalid(
                    "record for another event than the message",
                ));
            }
            records.push(record);
        }
        r.finish()?;
        Ok(Self {
            event_id,
            have,
            records,
        })
    }
}

/// What [`CheckinLog::sync_receive`] did and what to send back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Records applied.
    pub report: ApplyReport,
    /// The answer, if either side still lacks something.
    pub reply: Option<SyncMessage>,
}

/// A sync step could not be taken; nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The message is for another event.
    #[error("sync message is for another event")]
    WrongEvent,
    /// A record was refused.
    #[error(transparent)]
    Checkin(#[from] CheckinError),
}

impl CheckinLog {
    /// Opens a sync: this replica's summary, no records.
    pub fn sync_start(&self) -> SyncMessage {
        SyncMessage {
            event_id: self.event_id(),
            have: self.summary().clone(),
            records: Vec::new(),
        }
    }

    /// Pushes fresh records (e.g. an admission, to peers at once).
    pub fn sync_push(&self, records: Vec<ScanRecord>) -> SyncMessage {
        SyncMessage {
            event_id: self.event_id(),
            have: self.summary().clone(),
            records,
        }
    }

    /// Applies a message (all or nothing) and answers with what the sender
    /// lacks, at most `limit` records, if either side lacks anything.
    pub fn sync_receive(&mut self, msg: SyncMessage, limit: usize) -> Result<Received, SyncError> {
        if msg.event_id != self.event_id() {
            return Err(SyncError::WrongEvent);
        }
        let report = self.apply(msg.records)?;
        let records = self.missing_for(&msg.have, limit.min(MAX_RECORDS_PER_MESSAGE));
        let reply = if records.is_empty() && !self.summary().lacks_any_of(&msg.have) {
            None
        } else {
            Some(SyncMessage {
                event_id: self.event_id(),
                have: self.summary().clone(),
                records,
            })
        };
        Ok(Received { report, reply })
    }
}

type HmacSha256 = Hmac<Sha256>;

/// The header of an opened envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// Sending node.
    pub sender: NodeId,
    /// Roster version whose gossip key sealed it.
    pub key_version: u64,
    /// Sender's clock when sealing, unix ms.
    pub timestamp_ms: u64,
    /// Random, unique per envelope.
    pub nonce: [u8; 16],
}

/// Wraps message bytes for the LAN: magic, version, sender, roster key
/// version, timestamp, nonce, length, payload, then HMAC-SHA256 under the
/// gossip key of that roster version over all of that. The caller draws the
/// nonce from the OS RNG and passes its clock.
pub fn seal(key: &[u8; 32], header: &EnvelopeHeader, payload: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(payload.len() + ENVELOPE_OVERHEAD);
    w.bytes(&ENVELOPE_MAGIC);
    w.u8(ENVELOPE_VERSION);
    w.bytes(header.sender.as_bytes());
    w.u64(header.key_version);
    w.u64(header.timestamp_ms);
    w.bytes(&header.nonce);
    w.u32(payload.len() as u32);
    w.bytes(payload);
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&w.buf);
    w.bytes(&mac.finalize().into_bytes());
    w.into_inner()
}

/// Reads an envelope's header without authenticating it: only to pick the
/// gossip key of `key_version` for [`open`].
pub fn peek(bytes: &[u8]) -> Result<EnvelopeHeader, DecodeError> {
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(DecodeError::TooLarge);
    }
    let mut r = Reader::new(bytes);
    if r.array::<2>()? != ENVELOPE_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = r.u8()?;
    if version != ENVELOPE_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    Ok(EnvelopeHeader {
        sender: NodeId::from_bytes(r.array()?),
        key_version: r.u64()?,
        timestamp_ms: r.u64()?,
        nonce: r.array()?,
    })
}

/// Checks an envelope's tag (in constant time) and returns its header and
/// payload. Freshness is the [`ReplayGuard`]'s job, after this.
pub fn open<'a>(
    key: &[u8; 32],
    bytes: &'a [u8],
) -> Result<(EnvelopeHeader, &'a [u8]), DecodeError> {
    let header = peek(bytes)?;
    let mut r = Reader::new(bytes);
    r.take(ENVELOPE_OVERHEAD - 4 - 32)?;
    let len = r.u32()? as usize;
    let payload = r.take(len)?;
    let signed_len = r.position();
    let tag = r.take(32)?;
    r.finish()?;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&bytes[..signed_len]);
    mac.verify_slice(tag)
        .map_err(|_| DecodeError::Invalid("envelope authentication failed"))?;
    Ok((header, payload))
}

/// Why an authenticated envelope was refused as not fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Its timestamp is outside the window around the receiver's clock.
    #[error(
        "envelope timestamp is {skew_ms} ms away from this node's clock (window {REPLAY_WINDOW_MS} ms)"
    )]
    Stale {
        /// Distance from the receiver's clock.
        skew_ms: u64,
    },
    /// This nonce was already seen within the window: a replay.
    #[error("envelope nonce already seen: a replayed envelope")]
    Replayed,
    /// Too many envelopes within one window to remember them all.
    #[error("too many envelopes in the replay window; retry shortly")]
    Full,
}

/// Remembers the nonces of envelopes accepted within the last
/// [`REPLAY_WINDOW_MS`], at most [`MAX_REMEMBERED_NONCES`] of them: memory
/// is bounded, and an envelope older than the window is refused by its
/// timestamp, so forgetting it is safe.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: std::collections::HashMap<[u8; 16], u64>,
    by_time: std::collections::BTreeSet<(u64, [u8; 16])>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `header` once if its timestamp is within the window of
    /// `now_ms` and its nonce is new.
    pub fn check(&mut self, header: &EnvelopeHeader, now_ms: u64) -> Result<(), ReplayError> {
        let skew_ms = now_ms.abs_diff(header.timestamp_ms);
        if skew_ms > REPLAY_WINDOW_MS {
            return Err(ReplayError::Stale { skew_ms });
        }
        let horizon = now_ms.saturating_sub(REPLAY_WINDOW_MS);
        while let Some(&(t, nonce)) = self.by_time.first() {
            if t >= horizon {
                break;
            }
            self.by_time.pop_first();
            self.seen.remove(&nonce);
        }
        if self.seen.contains_key(&header.nonce) {
            return Err(ReplayError::Replayed);
        }
        if self.seen.len() >= MAX_REMEMBERED_NONCES {
            return Err(ReplayError::Full);
        }
        self.seen.insert(header.nonce, header.timestamp_ms);
        self.by_time.insert((header.timestamp_ms, header.nonce));
        Ok(())
    }

    /// Nonces remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
