//! The cloud's replica of each event's check-in CRDT, with the semantics of
//! [`sync_protocol::CheckinLog`]: a grow-only set of immutable records keyed
//! by `(node, seq)`, applied all or nothing, idempotent by scan id, with an
//! exact summary kept in the same transaction as the records.
//!
//! Invariants:
//! - Every write to one event's CRDT (a batch from a device, an online
//!   check-in) locks the event's `checkin_replicas` row first, so writes of
//!   one event are serialised without blocking its ticket sales.
//! - The cloud is a node of its own (one node id per event, in
//!   `checkin_replicas`); its sequence numbers are contiguous, and a record
//!   claiming its node id that it does not hold is refused as a conflict.
//! - The cloud's HLC per event is at least every accepted record's HLC (up to
//!   5 minutes ahead of its clock), so its own scans order after what it saw.

mod queries;
mod roster;
mod summary;

pub use queries::{GateCount, ScanFilter, StoredScan};
pub use roster::{RosterUpdate, RosterVersion};

use super::sql::{col, map_err, parsed};
use super::{Dialect, SqlStore, StoreError, StoreResult};
use crate::model::{EventId, UnixMillis};
use async_trait::async_trait;
use sqlx::{Any, Transaction};
use std::collections::{BTreeMap, HashMap};
use summary::{ReplicaSummary, seq_col};
use sync_protocol::checkin::{ApplyReport, Summary, TicketState, fold_ticket};
use sync_protocol::manifest::ManifestEntry;
use sync_protocol::{
    Direction, Hlc, HlcClock, NodeId, Outcome, ScanId, ScanRecord, SyncMessage, TicketId,
};

/// Remote HLCs further ahead of the cloud's clock than this do not move it.
const MAX_HLC_LEAD_MS: u64 = 300_000;
/// Rows per multi-row INSERT (15 parameters each; far below every limit).
const INSERT_CHUNK: usize = 200;
/// Ids per `IN (...)` lookup.
const LOOKUP_CHUNK: usize = 500;

/// What a device's batch came to.
#[derive(Debug, Clone)]
pub struct SyncOutcome {
    /// Records applied.
    pub report: ApplyReport,
    /// The cloud's summary and the records the device lacks.
    pub reply: SyncMessage,
}

/// A scan the cloud itself records (online check-in by staff), signed with
/// the event key (the cloud replica's key in the roster).
#[derive(Debug, Clone)]
pub struct CloudScan {
    /// The event's signing key.
    pub signer: sync_protocol::SecretKey,
    /// The event.
    pub event_id: EventId,
    /// The ticket.
    pub ticket_id: TicketId,
    /// Credential generation presented.
    pub generation: u16,
    /// Entry or exit.
    pub direction: Direction,
    /// Zone of the (virtual) gate.
    pub zone: Option<u8>,
    /// The decision.
    pub outcome: Outcome,
    /// Gate label.
    pub gate: String,
    /// Staff member.
    pub operator: String,
}

/// The check-in CRDT replicas and reads over them.
#[async_trait]
pub trait CheckinStore: Send + Sync {
    /// Applies a device's batch, whose records the caller checked against
    /// the roster, and answers with the cloud's summary and at most `limit`
    /// records `msg.have` lacks. Records in `revoked` (made by a revoked
    /// device after its revocation) and second copies of held scan ids with
    /// other content are kept as evidence, never applied; `InvalidState`
    /// (nothing written) when a record claims the cloud's node id but was never
    /// recorded by it.
    async fn sync_checkins(
        &self,
        event: EventId,
        msg: &SyncMessage,
        revoked: &std::collections::BTreeSet<ScanId>,
        from_device: NodeId,
        now_ms: u64,
        limit: usize,
    ) -> StoreResult<SyncOutcome>;
    /// Publishes the next roster version if the event's devices changed
    /// (see [`RosterVersion`]); the current version either way.
    async fn publish_roster(
        &self,
        event: EventId,
        cloud_key: &sync_protocol::PublicKey,
        sealed_candidate: &[u8],
        now: UnixMillis,
    ) -> StoreResult<RosterVersion>;
    /// What a device at roster version `since` needs (`NotFound` before the
    /// first publication).
    async fn roster_update(&self, event: EventId, since: u64) -> StoreResult<RosterUpdate>;
    /// The roster as published now.
    async fn roster_now(&self, event: EventId) -> StoreResult<sync_protocol::Roster>;
    /// Evidence kept: `(conflicts, revoked)`.
    async fn evidence_counts(&self, event: EventId) -> StoreResult<(u64, u64)>;
    /// Of `nodes`, those that belong to another event (a device or a cloud
    /// replica enrolled there).
    async fn foreign_nodes(&self, event: EventId, nodes: &[NodeId]) -> StoreResult<Vec<NodeId>>;
    /// The cloud's summary of the event's check-ins.
    async fn checkin_summary(&self, event: EventId) -> StoreResult<Summary>;
    /// Records the cloud's own scan if the ticket is still in state
    /// `expect` (the state the decision saw); `None` when it changed
    /// meanwhile (decide again).
    async fn append_cloud_scan(
        &self,
        scan: &CloudScan,
        expect: TicketState,
        now_ms: u64,
    ) -> StoreResult<Option<ScanRecord>>;
    /// Every scan of one ticket.
    async fn ticket_scans(&self, event: EventId, ticket: TicketId) -> StoreResult<Vec<StoredScan>>;
    /// One scan.
    async fn scan(&self, id: ScanId) -> StoreResult<StoredScan>;
    /// A page of scans in HLC order.
    async fn list_scans(&self, filter: &ScanFilter) -> StoreResult<Vec<StoredScan>>;
    /// Every admitted scan of the event (for the fold).
    async fn admitted_scans(&self, event: EventId) -> StoreResult<Vec<ScanRecord>>;
    /// Admitted entries, exits and rejections per gate.
    async fn gate_counts(&self, event: EventId) -> StoreResult<Vec<GateCount>>;
    /// The ticket's entry in the event's current manifest.
    async fn manifest_entry(
        &self,
        event: EventId,
        ticket: TicketId,
    ) -> StoreResult<Option<ManifestEntry>>;
}

/// The locked replica row of an event.
struct Replica {
    node: NodeId,
    last_seq: u64,
    last_hlc: Hlc,
}

/// A text column's value: the protocol allows NUL in labels, PostgreSQL
/// text does not (the exact bytes stay in `record`).
fn label(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

/// Bit-preserving HLC column (honest HLCs are far below 2^63).
fn hlc_col(h: Hlc) -> i64 {
    h.0 as i64
}

impl<D: Dialect> SqlStore<D> {
    /// Creates the event's replica row on first use and locks it.
    async fn lock_replica(
        tx: &mut Transaction<'static, Any>,
        event: EventId,
    ) -> StoreResult<Replica> {
        sqlx::query(
            "INSERT INTO checkin_replicas (event_id, node_id, last_seq, last_hlc) VALUES ($1, $2, 0, 0) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.to_string())
        .bind(uuid::Uuid::now_v7().to_string())
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        let lock = if D::NAME == "postgres" {
            " FOR UPDATE"
        } else {
            ""
        };
        let sql = format!(
            "SELECT node_id, last_seq, last_hlc FROM checkin_replicas WHERE event_id = $1{lock}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(event.to_string())
            .fetch_one(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(Replica {
            node: parsed(&row, "node_id")?,
            last_seq: summary::seq_of(col(&row, "last_seq")?)?,
            last_hlc: Hlc(col::<i64>(&row, "last_hlc")? as u64),
        })
    }

    async fn save_replica(
        tx: &mut Transaction<'static, Any>,
        event: EventId,
        r: &Replica,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE checkin_replicas SET last_seq = $1, last_hlc = $2 WHERE event_id = $3")
            .bind(seq_col(r.last_seq)?)
            .bind(hlc_col(r.last_hlc))
            .bind(event.to_string())
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Keeps a refused record as evidence (idempotent).
    async fn keep_evidence(
        tx: &mut Transaction<'static, Any>,
        kind: &str,
        r: &ScanRecord,
        from_device: NodeId,
        now: UnixMillis,
    ) -> StoreResult<()> {
        use sha2::Digest;
        let body = r.to_bytes();
        sqlx::query(
            "INSERT INTO checkin_evidence (event_id, scan_id, kind, record_hash, record, signature, \
             from_device, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(r.event_id.to_string())
        .bind(r.id.to_string())
        .bind(kind.to_string())
        .bind(hex::encode(sha2::Sha256::digest(&body)))
        .bind(body)
        .bind(r.signature.0.to_vec())
        .bind(from_device.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Of `ids`, those held as `revoked` evidence (in the summary, not the set).
    async fn evidence_ids(
        tx: &mut Transaction<'static, Any>,
        event: EventId,
        ids: &[ScanId],
    ) -> StoreResult<std::collections::HashSet<ScanId>> {
        let mut out = std::collections::HashSet::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT scan_id FROM checkin_evidence WHERE event_id = $1 AND kind = 'revoked' AND scan_id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(event.to_string());
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for row in q.fetch_all(&mut **tx).await.map_err(map_err)? {
                out.insert(parsed(&row, "scan_id")?);
            }
        }
        Ok(out)
    }

    /// The stored bytes of `ids` (all of one event).
    async fn stored_bytes(
        tx: &mut Transaction<'static, Any>,
        event: EventId,
        ids: &[ScanId],
    ) -> StoreResult<HashMap<ScanId, Vec<u8>>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT scan_id, record FROM checkins WHERE event_id = $1 AND scan_id IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(event.to_string());
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for row in q.fetch_all(&mut **tx).await.map_err(map_err)? {
                let id: ScanId = parsed(&row, "scan_id")?;
                let bytes: Option<Vec<u8>> = col(&row, "record")?;
                out.insert(id, bytes.unwrap_or_default());
            }
        }
        Ok(out)
    }

    /// Inserts records known to be new.
    async fn insert_records(
        tx: &mut Transaction<'static, Any>,
        records: &[&ScanRecord],
        now: UnixMillis,
    ) -> StoreResult<()> {
        for chunk in records.chunks(INSERT_CHUNK) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let marks: Vec<String> = (1..=15).map(|c| format!("${}", i * 15 + c)).collect();
                    format!("({})", marks.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO checkins (scan_id, event_id, ticket_id, node_id, seq, generation, direction, \
                 outcome, hlc, zone, gate, operator, recorded_at, record, signature) VALUES {}",
                rows.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.id.to_string())
                    .bind(r.event_id.to_string())
                    .bind(r.ticket_id.to_string())
                    .bind(r.id.node.to_string())
                    .bind(seq_col(r.id.seq)?)
                    .bind(i64::from(r.generation))
                    .bind(super::devices::direction_str(r.direction))
                    .bind(i64::from(r.outcome.code()))
                    .bind(hlc_col(r.hlc))
                    .bind(r.zone.map(i64::from))
                    .bind(label(&r.gate))
                    .bind(label(&r.operator))
                    .bind(now)
                    .bind(r.to_bytes())
                    .bind((!r.signature.is_unsigned()).then(|| r.signature.0.to_vec()));
            }
            q.execute(&mut **tx).await.map_err(map_err)?;
        }
        Ok(())
    }

    /// Records the replica holds that a replica with `their` summary lacks.
    async fn missing_for(
        tx: &mut Transaction<'static, Any>,
        event: EventId,
        mine: &ReplicaSummary,
        their: &Summary,
        limit: usize,
    ) -> StoreResult<Vec<ScanRecord>> {
        let mut out = Vec::new();
        for (node, prefix, extras) in mine.nodes() {
            let from = their.vv.get(&node);
            let top = extras.and_then(|e| e.last().copied()).unwrap_or(prefix);
            if top <= from || out.len() >= limit {
                continue;
            }
            let skip = their.extras.get(&node).map_or(0, |e| e.len());
            let want = (limit - out.len() + skip) as i64;
            // Unsigned rows (stored before signed records) are never sent:
            // no device would believe them.
            let rows = sqlx::query(
                "SELECT record, signature FROM checkins WHERE event_id = $1 AND node_id = $2 AND seq > $3 \
                 AND signature IS NOT NULL ORDER BY seq LIMIT $4",
            )
            .bind(event.to_string())
            .bind(node.to_string())
            .bind(seq_col(from)?)
            .bind(want)
            .fetch_all(&mut **tx)
            .await
            .map_err(map_err)?;
            for row in &rows {
                let record = queries::decode(row)?;
                if out.len() < limit && !their.has(&record.id) {
                    out.push(record);
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl<D: Dialect> CheckinStore for SqlStore<D> {
    async fn sync_checkins(
        &self,
        event: EventId,
        msg: &SyncMessage,
        revoked: &std::collections::BTreeSet<ScanId>,
        from_device: NodeId,
        now_ms: u64,
        limit: usize,
    ) -> StoreResult<SyncOutcome> {
        let mut tx = self.begin_write().await?;
        let mut replica = Self::lock_replica(&mut tx, event).await?;
        let before = ReplicaSummary::load(&mut tx, event).await?;
        let mut report = ApplyReport::default();
        let mut fresh: BTreeMap<ScanId, &ScanRecord> = BTreeMap::new();
        let mut held: Vec<&ScanRecord> = Vec::new();
        let mut conflicts: Vec<&ScanRecord> = Vec::new();
        let mut refused: BTreeMap<ScanId, &ScanRecord> = BTreeMap::new();
        for r in &msg.records {
            if r.event_id != event {
                return Err(StoreError::InvalidState(format!(
                    "scan {} is for another event",
                    r.id
                )));
            }
            if before.has(&r.id) {
                held.push(r);
                continue;
            }
            if revoked.contains(&r.id) {
                refused.insert(r.id, r);
                continue;
            }
            match fresh.get(&r.id) {
                Some(other) if !other.same_content(r) => conflicts.push(r),
                Some(_) => report.duplicate += 1,
                None if r.id.node == replica.node => {
                    return Err(StoreError::InvalidState(format!(
                        "scan {} claims the cloud's node id but the cloud never recorded it",
                        r.id
                    )));
                }
                None => {
                    fresh.insert(r.id, r);
                }
            }
        }
        let ids: Vec<ScanId> = held.iter().map(|r| r.id).collect();
        let stored = Self::stored_bytes(&mut tx, event, &ids).await?;
        let missing: Vec<ScanId> = ids
            .iter()
            .filter(|id| !stored.contains_key(id))
            .copied()
            .collect();
        let as_evidence = Self::evidence_ids(&mut tx, event, &missing).await?;
        for r in &held {
            match stored.get(&r.id) {
                Some(bytes) if *bytes == r.to_bytes() => report.duplicate += 1,
                Some(_) => conflicts.push(r),
                None if as_evidence.contains(&r.id) => report.duplicate += 1,
                None => {
                    return Err(StoreError::Other(format!(
                        "summary lists scan {} but it is not stored",
                        r.id
                    )));
                }
            }
        }
        let now = now_ms as i64;
        for r in &conflicts {
            Self::keep_evidence(&mut tx, "conflict", r, from_device, now).await?;
            tracing::warn!(scan = %r.id, device = %from_device, "conflicting copy of a held scan kept as evidence");
        }
        for r in refused.values() {
            Self::keep_evidence(&mut tx, "revoked", r, from_device, now).await?;
        }
        report.conflicts = conflicts.len();
        report.refused = refused.len();
        let fresh: Vec<&ScanRecord> = fresh.into_values().collect();
        report.new = fresh.len();
        let mut after = before.clone();
        for id in refused.keys() {
            // Held as evidence: the device stops offering it.
            after.add(id);
        }
        if !refused.is_empty() && fresh.is_empty() {
            after.store_changes(&before, &mut tx, event).await?;
        }
        if !fresh.is_empty() {
            Self::insert_records(&mut tx, &fresh, now_ms as i64).await?;
            super::outbox::checked_in(&mut tx, event, &fresh, now_ms as i64).await?;
            let ceiling = Hlc::new(now_ms.saturating_add(MAX_HLC_LEAD_MS), u16::MAX);
            for r in &fresh {
                after.add(&r.id);
                if r.hlc <= ceiling && r.hlc > replica.last_hlc {
                    replica.last_hlc = r.hlc;
                }
            }
            after.store_changes(&before, &mut tx, event).await?;
            Self::save_replica(&mut tx, event, &replica).await?;
        }
        let records = Self::missing_for(&mut tx, event, &after, &msg.have, limit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(SyncOutcome {
            report,
            reply: SyncMessage {
                event_id: event,
                have: after.to_summary(),
                records,
            },
        })
    }

    async fn foreign_nodes(&self, event: EventId, nodes: &[NodeId]) -> StoreResult<Vec<NodeId>> {
        let mut out = Vec::new();
        for chunk in nodes.chunks(LOOKUP_CHUNK) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let list = marks.join(", ");
            let sql = format!(
                "SELECT id AS node_id FROM devices WHERE event_id <> $1 AND id IN ({list}) \
                 UNION SELECT node_id FROM checkin_replicas WHERE event_id <> $1 AND node_id IN ({list})"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(event.to_string());
            for n in chunk {
                q = q.bind(n.to_string());
            }
            for row in q.fetch_all(&self.pool).await.map_err(map_err)? {
                out.push(parsed(&row, "node_id")?);
            }
        }
        Ok(out)
    }

    async fn checkin_summary(&self, event: EventId) -> StoreResult<Summary> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let s = ReplicaSummary::load(&mut tx, event).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(s.to_summary())
    }

    async fn append_cloud_scan(
        &self,
        scan: &CloudScan,
        expect: TicketState,
        now_ms: u64,
    ) -> StoreResult<Option<ScanRecord>> {
        let event = scan.event_id;
        let mut tx = self.begin_write().await?;
        let mut replica = Self::lock_replica(&mut tx, event).await?;
        let seen = Self::ticket_records(&mut tx, event, scan.ticket_id).await?;
        if fold_ticket(&seen).state != expect {
            return Ok(None);
        }
        replica.last_seq += 1;
        replica.last_hlc = HlcClock::new(replica.last_hlc).now(now_ms);
        let mut record = ScanRecord {
            id: ScanId {
                node: replica.node,
                seq: replica.last_seq,
            },
            event_id: event,
            ticket_id: scan.ticket_id,
            generation: scan.generation,
            direction: scan.direction,
            hlc: replica.last_hlc,
            zone: scan.zone,
            outcome: scan.outcome,
            gate: scan.gate.clone(),
            operator: scan.operator.clone(),
            signature: Default::default(),
        };
        record
            .validate()
            .map_err(|e| StoreError::Other(format!("cloud scan record: {e}")))?;
        record.sign(&scan.signer);
        Self::insert_records(&mut tx, &[&record], now_ms as i64).await?;
        super::outbox::checked_in(&mut tx, event, &[&record], now_ms as i64).await?;
        // The cloud's own records are contiguous: its prefix is its last seq.
        sqlx::query(
            "INSERT INTO checkin_prefix (event_id, node_id, prefix) VALUES ($1, $2, $3) \
             ON CONFLICT (event_id, node_id) DO UPDATE SET prefix = excluded.prefix",
        )
        .bind(event.to_string())
        .bind(replica.node.to_string())
        .bind(seq_col(replica.last_seq)?)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        Self::save_replica(&mut tx, event, &replica).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(record))
    }

    async fn publish_roster(
        &self,
        event: EventId,
        cloud_key: &sync_protocol::PublicKey,
        sealed_candidate: &[u8],
        now: UnixMillis,
    ) -> StoreResult<RosterVersion> {
        self.publish_roster_tx(event, cloud_key, sealed_candidate, now)
            .await
    }

    async fn roster_update(&self, event: EventId, since: u64) -> StoreResult<RosterUpdate> {
        self.roster_update_tx(event, since).await
    }

    async fn roster_now(&self, event: EventId) -> StoreResult<sync_protocol::Roster> {
        self.roster_now_tx(event).await
    }

    async fn evidence_counts(&self, event: EventId) -> StoreResult<(u64, u64)> {
        let rows = sqlx::query(
            "SELECT kind, count(*) AS n FROM checkin_evidence WHERE event_id = $1 GROUP BY kind",
        )
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut out = (0, 0);
        for row in &rows {
            let kind: String = col(row, "kind")?;
            let n = summary::seq_of(col(row, "n")?)?;
            match kind.as_str() {
                "conflict" => out.0 = n,
                _ => out.1 = n,
            }
        }
        Ok(out)
    }

    async fn ticket_scans(&self, event: EventId, ticket: TicketId) -> StoreResult<Vec<StoredScan>> {
        self.scans_of_ticket(event, ticket).await
    }

    async fn scan(&self, id: ScanId) -> StoreResult<StoredScan> {
        self.scan_by_id(id).await
    }

    async fn list_scans(&self, filter: &ScanFilter) -> StoreResult<Vec<StoredScan>> {
        self.scans_page(filter).await
    }

    async fn admitted_scans(&self, event: EventId) -> StoreResult<Vec<ScanRecord>> {
        self.admitted_of_event(event).await
    }

    async fn gate_counts(&self, event: EventId) -> StoreResult<Vec<GateCount>> {
        self.counts_by_gate(event).await
    }

    async fn manifest_entry(
        &self,
        event: EventId,
        ticket: TicketId,
    ) -> StoreResult<Option<ManifestEntry>> {
        self.current_entry(event, ticket).await
    }
}
