//! The check-in CRDT on SQLite, with the semantics of
//! [`sync_protocol::CheckinLog`]: a grow-only set of immutable records keyed
//! by `(node, seq)`, an exact [`Summary`] kept in the same transaction as the
//! records, all-or-nothing batches, and sync steps that answer with what the
//! other side lacks.
//!
//! Invariants: a local scan is decided and appended in one `BEGIN IMMEDIATE`
//! transaction, so no other scan of this store can slip between the decision
//! and its record; its sequence number is one above the highest this node
//! ever stored, so numbers are never reused; the HLC is read, advanced and
//! persisted in the same transaction.

use super::manifest::SqlManifest;
use super::{Store, StoreError, get_hlc, i64_of, put, u64_of};
use crdts::{CmRDT, Dot};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::cell::RefCell;
use sync_protocol::checkin::{
    Advance, ApplyReport, CheckinError, DoubleAdmission, MAX_SEQ, Summary, TicketFold, advance,
    fold_ticket,
};
use sync_protocol::roster::RecordRefusal;
use sync_protocol::{
    CheckinView, Decision, Direction, EventId, GatePolicy, Hlc, HlcClock, KeyRing, ManifestView,
    NodeId, ScanId, ScanRecord, TicketId, TicketState,
};

/// The fixed fields of this node's scan records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordTemplate {
    /// This node.
    pub node: NodeId,
    /// The event.
    pub event_id: EventId,
    /// The gate's direction.
    pub direction: Direction,
    /// The gate's zone.
    pub zone: Option<u8>,
    /// Gate label (cut to 64 bytes).
    pub gate: String,
    /// Operator (empty for a fixed gate).
    pub operator: String,
}

/// Records the cloud has not acknowledged yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CloudBacklog {
    /// Records held here and absent from the cloud's last known summary.
    pub pending: u64,
    /// Of those, scans recorded by this node.
    pub pending_own: u64,
}

fn cut_label(s: &str) -> String {
    let mut end = s.len().min(sync_protocol::checkin::MAX_LABEL);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn decode_record(bytes: &[u8], signature: Option<[u8; 64]>) -> Result<ScanRecord, StoreError> {
    ScanRecord::from_parts(bytes, signature.unwrap_or([0; 64]))
        .map_err(|e| StoreError::Corrupt(format!("scan record: {e}")))
}

fn get_record(conn: &Connection, id: &ScanId) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT record FROM checkins WHERE node = ?1 AND seq = ?2")?
        .query_row(params![id.node.as_bytes(), i64_of(id.seq)], |r| r.get(0))
        .optional()?)
}

/// Whether `id` is held only as evidence (refused, but part of the summary
/// so that peers stop offering it).
fn in_evidence(conn: &Connection, id: &ScanId) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM checkin_evidence WHERE node = ?1 AND seq = ?2 AND kind = 'revoked'",
        )?
        .query_row(params![id.node.as_bytes(), i64_of(id.seq)], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Keeps a refused record as evidence (idempotent).
fn keep_evidence(
    conn: &Connection,
    kind: &str,
    r: &ScanRecord,
    now_ms: u64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO checkin_evidence (node, seq, kind, record, signature, received_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        r.id.node.as_bytes(),
        i64_of(r.id.seq),
        kind,
        r.to_bytes(),
        r.signature.0.as_slice(),
        i64_of(now_ms),
    ])?;
    Ok(())
}

/// Inserts a record known to be new and advances the summary.
fn insert_new(conn: &Connection, r: &ScanRecord, now_ms: u64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO checkins
             (node, seq, ticket_id, hlc, outcome, direction, record, stored_at_ms, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        r.id.node.as_bytes(),
        i64_of(r.id.seq),
        r.ticket_id.as_bytes(),
        i64_of(r.hlc.0),
        r.outcome.code(),
        matches!(r.direction, Direction::Exit),
        r.to_bytes(),
        i64_of(now_ms),
        (!r.signature.is_unsigned()).then_some(r.signature.0.as_slice()),
    ])?;
    add_to_summary(conn, &r.id)
}

/// Advances the stored summary by one id, with the protocol's algorithm
/// ([`sync_protocol::checkin::advance`]).
fn add_to_summary(conn: &Connection, id: &ScanId) -> Result<(), StoreError> {
    let node = id.node.as_bytes();
    let prefix: u64 = conn
        .prepare_cached("SELECT prefix FROM summary_prefix WHERE node = ?1")?
        .query_row([node], |row| row.get::<_, i64>(0))
        .optional()?
        .map_or(0, u64_of);
    let mut absorb =
        conn.prepare_cached("DELETE FROM summary_extra WHERE node = ?1 AND seq = ?2")?;
    let mut failed = None;
    let step = advance(prefix, id.seq, |seq| {
        match absorb.execute(params![node, i64_of(seq)]) {
            Ok(n) => n == 1,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    match step {
        Advance::Held => {}
        Advance::Extra => {
            conn.prepare_cached("INSERT OR IGNORE INTO summary_extra (node, seq) VALUES (?1, ?2)")?
                .execute(params![node, i64_of(id.seq)])?;
        }
        Advance::Prefix(next) => {
            conn.prepare_cached(
                "INSERT INTO summary_prefix (node, prefix) VALUES (?1, ?2)
                 ON CONFLICT (node) DO UPDATE SET prefix = excluded.prefix",
            )?
            .execute(params![node, i64_of(next)])?;
        }
    }
    Ok(())
}

pub(super) fn read_summary(conn: &Connection) -> Result<Summary, StoreError> {
    let mut s = Summary::default();
    let mut stmt = conn.prepare_cached("SELECT node, prefix FROM summary_prefix")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, [u8; 16]>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (node, prefix) = row?;
        if prefix > 0 {
            s.vv.apply(Dot::new(NodeId::from_bytes(node), u64_of(prefix)));
        }
    }
    let mut stmt = conn.prepare_cached("SELECT node, seq FROM summary_extra")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, [u8; 16]>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (node, seq) = row?;
        s.extras
            .entry(NodeId::from_bytes(node))
            .or_default()
            .insert(u64_of(seq));
    }
    Ok(s)
}

pub(super) fn nodes_of(s: &Summary) -> std::collections::BTreeSet<NodeId> {
    s.vv.dots.keys().chain(s.extras.keys()).copied().collect()
}

pub(super) fn missing_for(
    conn: &Connection,
    their: &Summary,
    limit: usize,
) -> Result<Vec<ScanRecord>, StoreError> {
    let mine = read_summary(conn)?;
    let mut out = Vec::new();
    // Unsigned records (a peer's, stored by a release before signed
    // records) cannot be believed by anyone: they are never sent.
    let mut stmt = conn.prepare_cached(
        "SELECT seq, record, signature FROM checkins
         WHERE node = ?1 AND seq > ?2 AND signature IS NOT NULL ORDER BY seq",
    )?;
    for node in nodes_of(&mine) {
        let from = their.vv.get(&node);
        let mut rows = stmt.query(params![node.as_bytes(), i64_of(from)])?;
        while let Some(row) = rows.next()? {
            if out.len() >= limit {
                return Ok(out);
            }
            let seq = u64_of(row.get(0)?);
            if !their.has(&ScanId { node, seq }) {
                out.push(decode_record(&row.get::<_, Vec<u8>>(1)?, row.get(2)?)?);
            }
        }
    }
    Ok(out)
}

/// [`CheckinView`] over a connection; SQL errors are kept for `finish`.
pub(crate) struct SqlCheckins<'c> {
    conn: &'c Connection,
    error: RefCell<Option<StoreError>>,
}

impl<'c> SqlCheckins<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            error: RefCell::new(None),
        }
    }

    pub(crate) fn finish(self) -> Result<(), StoreError> {
        self.error.into_inner().map_or(Ok(()), Err)
    }

    pub(crate) fn fold(&self, ticket: &TicketId) -> Result<TicketFold, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record FROM checkins WHERE ticket_id = ?1 AND outcome = 0")?;
        let rows = stmt.query_map([ticket.as_bytes()], |r| r.get::<_, Vec<u8>>(0))?;
        let mut records = Vec::new();
        for bytes in rows {
            records.push(decode_record(&bytes?, None)?);
        }
        Ok(fold_ticket(&records))
    }
}

impl CheckinView for SqlCheckins<'_> {
    fn ticket_state(&self, ticket: &TicketId) -> TicketState {
        match self.fold(ticket) {
            Ok(f) => f.state,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                // Never reached as an admission: `finish` discards the decision.
                TicketState::NeverSeen
            }
        }
    }
}

impl Store {
    /// Decides a scan against the stored keys, manifest and check-ins and,
    /// if the credential parsed (so the record names a ticket), appends the
    /// record and commits (fsync) before returning. Malformed input writes
    /// nothing. `wall_ms` is the best time in milliseconds for the HLC.
    pub fn decide_and_record(
        &self,
        wall_ms: u64,
        template: &RecordTemplate,
        decide: impl FnOnce(&KeyRing, &dyn ManifestView, &dyn CheckinView) -> Decision,
    ) -> Result<(Decision, Option<ScanRecord>), StoreError> {
        let mut guard = self.lock();
        // Borrowed, not cloned: this runs on every scan.
        let inner = &mut *guard;
        let ring = inner.ring.as_ref().ok_or(StoreError::NotProvisioned)?;
        let key = inner
            .device_key
            .as_ref()
            .ok_or(StoreError::NotProvisioned)?;
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let manifest = SqlManifest::new(&tx);
        let checkins = SqlCheckins::new(&tx);
        let decision = decide(ring, &manifest, &checkins);
        manifest.finish()?;
        checkins.finish()?;
        let Some(ticket_id) = decision.ticket_id else {
            return Ok((decision, None));
        };
        let last_seq: Option<i64> = tx
            .prepare_cached("SELECT max(seq) FROM checkins WHERE node = ?1")?
            .query_row([template.node.as_bytes()], |r| r.get(0))?;
        let seq = last_seq.map_or(1, |s| u64_of(s) + 1);
        if seq > MAX_SEQ {
            return Err(StoreError::Corrupt("sequence numbers exhausted".into()));
        }
        let hlc = HlcClock::new(get_hlc(&tx)?).now(wall_ms);
        put(&tx, "hlc_last", &hlc.0.to_be_bytes())?;
        let mut record = ScanRecord {
            id: ScanId {
                node: template.node,
                seq,
            },
            event_id: template.event_id,
            ticket_id,
            generation: decision.generation.unwrap_or(0),
            direction: template.direction,
            hlc,
            zone: template.zone.filter(|z| *z < 32),
            outcome: decision.outcome,
            gate: cut_label(&template.gate),
            operator: cut_label(&template.operator),
            signature: Default::default(),
        };
        record.sign(key);
        insert_new(&tx, &record, wall_ms)?;
        tx.commit()?;
        Ok((decision, Some(record)))
    }

    /// Decides against the store without recording anything (what-if
    /// scans from the CLI while the daemon owns the gate).
    pub fn decide_only(
        &self,
        decide: impl FnOnce(&GatePolicy, &KeyRing, &dyn ManifestView, &dyn CheckinView) -> Decision,
    ) -> Result<Decision, StoreError> {
        let inner = self.lock();
        let policy = &inner
            .identity
            .as_ref()
            .ok_or(StoreError::NotProvisioned)?
            .policy;
        let ring = inner.ring.as_ref().ok_or(StoreError::NotProvisioned)?;
        // One read transaction for every lookup: one snapshot of the
        // manifest and the log, and one WAL read lock instead of one per
        // statement (their lock syscalls were a tenth of a decision).
        let tx = inner.conn.unchecked_transaction()?;
        let manifest = SqlManifest::new(&tx);
        let checkins = SqlCheckins::new(&tx);
        let decision = decide(policy, ring, &manifest, &checkins);
        manifest.finish()?;
        checkins.finish()?;
        tx.commit()?;
        Ok(decision)
    }

    /// Applies records from a peer or the cloud (as
    /// [`sync_protocol::CheckinLog::apply`], with the roster in front).
    /// Refused, with nothing written: a record for another event, an invalid
    /// one, one claiming this node's id that this node does not hold, one of
    /// a device the roster does not list, dated before its enrollment, or
    /// not signed by its device. Kept as evidence and not applied (the rest
    /// of the batch is): a record its device made after its revocation
    /// (`revoked`), and a second copy of a held scan id with other content
    /// (`conflict`: the device signed two different records under one id, a
    /// cloned identity). Remote HLCs up to `observe_until_ms` advance the
    /// persisted clock.
    pub fn apply_records(
        &self,
        records: &[ScanRecord],
        wall_ms: u64,
        observe_until_ms: u64,
    ) -> Result<ApplyReport, StoreError> {
        let mut inner = self.lock();
        let (event, own) = {
            let id = inner.identity.as_ref().ok_or(StoreError::NotProvisioned)?;
            (id.event_id, id.node_id)
        };
        let roster = inner.roster.clone().ok_or(StoreError::NotProvisioned)?;
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut report = ApplyReport::default();
        let mut newest = Hlc::default();
        let mut fresh: Vec<&ScanRecord> = Vec::new();
        let mut revoked: Vec<&ScanRecord> = Vec::new();
        let mut conflicts: Vec<&ScanRecord> = Vec::new();
        let mut to_verify = Vec::new();
        for r in records {
            if r.event_id != event {
                return Err(CheckinError::WrongEvent(r.id).into());
            }
            r.validate().map_err(|e| CheckinError::Invalid(r.id, e))?;
            let held = get_record(&tx, &r.id)?;
            if r.id.node == own {
                // Nobody but this node records under its id: not even a
                // copy of one it holds is believed unless it is identical.
                match held {
                    Some(bytes) if bytes == r.to_bytes() => {
                        report.duplicate += 1;
                        continue;
                    }
                    _ => return Err(RecordRefusal::OwnNode(r.id).into()),
                }
            }
            let entry = match roster.standing(r) {
                Ok(entry) => entry,
                Err(RecordRefusal::Revoked(_)) => {
                    let entry = roster
                        .entry(&r.id.node)
                        .ok_or(RecordRefusal::UnknownDevice(r.id))?;
                    to_verify.push((r, &entry.public_key));
                    if held.is_none() {
                        revoked.push(r);
                    } else {
                        report.duplicate += 1;
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            to_verify.push((r, &entry.public_key));
            match held {
                Some(bytes) if bytes == r.to_bytes() => report.duplicate += 1,
                Some(_) => conflicts.push(r),
                None if in_evidence(&tx, &r.id)? => report.duplicate += 1,
                None => fresh.push(r),
            }
        }
        sync_protocol::roster::verify_signatures(&to_verify)?;
        let mut seen: std::collections::BTreeMap<ScanId, &ScanRecord> =
            std::collections::BTreeMap::new();
        for r in fresh {
            match seen.get(&r.id) {
                Some(other) if !ScanRecord::same_content(other, r) => conflicts.push(r),
                Some(_) => report.duplicate += 1,
                None => {
                    seen.insert(r.id, r);
                }
            }
        }
        for r in seen.into_values() {
            insert_new(&tx, r, wall_ms)?;
            report.new += 1;
            if r.hlc.physical_ms() <= observe_until_ms {
                newest = newest.max(r.hlc);
            }
        }
        for r in &revoked {
            keep_evidence(&tx, "revoked", r, wall_ms)?;
            add_to_summary(&tx, &r.id)?;
        }
        for r in &conflicts {
            keep_evidence(&tx, "conflict", r, wall_ms)?;
            tracing::warn!(scan = %r.id, "conflicting copy of a held scan kept as evidence");
        }
        report.refused += revoked.len();
        report.conflicts += conflicts.len();
        if newest > Hlc::default() {
            let held = get_hlc(&tx)?;
            let observed = HlcClock::new(held).observe(newest, wall_ms);
            put(&tx, "hlc_last", &observed.0.to_be_bytes())?;
        }
        tx.commit()?;
        Ok(report)
    }

    /// Exactly which records this store holds.
    pub fn summary(&self) -> Result<Summary, StoreError> {
        read_summary(&self.lock().conn)
    }

    /// Records a replica with summary `their` lacks, at most `limit`.
    pub fn missing_for(
        &self,
        their: &Summary,
        limit: usize,
    ) -> Result<Vec<ScanRecord>, StoreError> {
        missing_for(&self.lock().conn, their, limit)
    }

    /// One record.
    pub fn record(&self, id: &ScanId) -> Result<Option<ScanRecord>, StoreError> {
        let inner = self.lock();
        let row: Option<(Vec<u8>, Option<[u8; 64]>)> = inner
            .conn
            .prepare_cached("SELECT record, signature FROM checkins WHERE node = ?1 AND seq = ?2")?
            .query_row(params![id.node.as_bytes(), i64_of(id.seq)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        row.map(|(b, sig)| decode_record(&b, sig)).transpose()
    }

    /// The latest `limit` records by HLC, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<ScanRecord>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner
            .conn
            .prepare_cached("SELECT record, signature FROM checkins ORDER BY hlc DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit.min(100_000) as i64], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<[u8; 64]>>(1)?))
        })?;
        rows.map(|row| {
            let (b, sig) = row?;
            decode_record(&b, sig)
        })
        .collect()
    }

    /// Number of records held.
    pub fn record_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .lock()
            .conn
            .query_row("SELECT count(*) FROM checkins", [], |r| r.get(0))?;
        Ok(u64_of(n))
    }

    /// The folded state of one ticket.
    pub fn ticket_fold(&self, ticket: &TicketId) -> Result<TicketFold, StoreError> {
        SqlCheckins::new(&self.lock().conn).fold(ticket)
    }

    /// Double admissions (same ticket entered twice without an exit, e.g.
    /// admitted at two gates during a partition), at most `limit`.
    pub fn double_admissions(&self, limit: usize) -> Result<Vec<DoubleAdmission>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(
            "SELECT ticket_id FROM checkins WHERE outcome = 0 AND direction = 0
             GROUP BY ticket_id HAVING count(*) > 1 ORDER BY ticket_id",
        )?;
        let tickets: Vec<[u8; 16]> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let view = SqlCheckins::new(&inner.conn);
        let mut out = Vec::new();
        for t in tickets {
            out.extend(view.fold(&TicketId::from_bytes(t))?.double_admissions);
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
        }
        Ok(out)
    }
}
