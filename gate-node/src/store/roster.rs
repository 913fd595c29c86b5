//! The device roster on SQLite, the gossip key of each roster version, and
//! the evidence kept of refused records.
//!
//! Invariants (as [`sync_protocol::Roster`]): roster bytes are verified
//! against the key ring before anything is written; a full roster never goes
//! back; a delta applies only on top of the exact `(version, digest)` held.
//! The roster is cached in memory next to the key ring and reloaded with it.

use super::{Inner, Store, StoreError, get_array, get_u64, i64_of, put, u64_of};
use rusqlite::{Connection, TransactionBehavior, params};
use serde::Serialize;
use sync_protocol::roster::{Roster, RosterEntry, SignedRoster, genesis_digest};
use sync_protocol::{EventId, NodeId, PublicKey, ScanRecord};

/// The roster held, in short (for `/status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RosterInfo {
    /// Version held (0: none yet; every peer record is refused).
    pub version: u64,
    /// Devices listed.
    pub devices: usize,
    /// Of those, revoked.
    pub revoked: usize,
}

/// One piece of evidence: a record refused but kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// `conflict` (a second copy of a held scan id with other content) or
    /// `revoked` (made by a revoked device after its revocation).
    pub kind: String,
    /// The refused record, with its signature.
    pub record: ScanRecord,
    /// When it reached this node (best time, unix ms).
    pub received_at_ms: u64,
}

pub(super) fn load_roster(conn: &Connection, event: EventId) -> Result<Roster, StoreError> {
    let version = get_u64(conn, "roster_version")?.unwrap_or(0);
    let digest = get_array::<32>(conn, "roster_digest")?.unwrap_or_else(|| genesis_digest(&event));
    let mut stmt = conn.prepare_cached(
        "SELECT node, public_key, enrolled_at_ms, revoked_at_ms FROM roster_devices",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, [u8; 16]>(0)?,
            r.get::<_, [u8; 32]>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (node, key, enrolled, revoked) = row?;
        entries.push(RosterEntry {
            node_id: NodeId::from_bytes(node),
            public_key: PublicKey::from_bytes(&key)
                .map_err(|e| StoreError::Corrupt(format!("roster key: {e}")))?,
            enrolled_at_ms: u64_of(enrolled),
            revoked_at_ms: revoked.map(u64_of),
        });
    }
    Ok(Roster::from_parts(event, version, digest, entries))
}

fn upsert_devices(conn: &Connection, entries: &[RosterEntry]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO roster_devices (node, public_key, enrolled_at_ms, revoked_at_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (node) DO UPDATE SET public_key = excluded.public_key,
             enrolled_at_ms = excluded.enrolled_at_ms, revoked_at_ms = excluded.revoked_at_ms",
    )?;
    for e in entries {
        stmt.execute(params![
            e.node_id.as_bytes(),
            e.public_key.to_bytes(),
            i64_of(e.enrolled_at_ms),
            e.revoked_at_ms.map(i64_of),
        ])?;
    }
    Ok(())
}

/// Stores a gossip key for a roster version (the first one stored wins).
pub(super) fn put_gossip_key(
    conn: &Connection,
    version: u64,
    key: &[u8; 32],
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO gossip_keys (version, key) VALUES (?1, ?2)",
        params![i64_of(version), key.as_slice()],
    )?;
    Ok(())
}

impl Store {
    /// Verifies and applies a signed full roster or delta (and the gossip
    /// key of its version, if given), in one transaction. Returns the
    /// version held after. Nothing changes when it is refused.
    pub fn apply_roster(
        &self,
        bytes: &[u8],
        gossip_key: Option<(u64, [u8; 32])>,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let ring = inner.ring.clone().ok_or(StoreError::NotProvisioned)?;
        let mut roster = inner.roster.clone().ok_or(StoreError::NotProvisioned)?;
        let event = roster.event_id();
        let signed = SignedRoster::open(bytes, &ring, &event)?;
        let full = signed.base.is_none();
        let entries = signed.entries.clone();
        roster.apply(signed)?;
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if full {
            tx.execute("DELETE FROM roster_devices", [])?;
        }
        upsert_devices(&tx, &entries)?;
        put(&tx, "roster_version", &roster.version().to_be_bytes())?;
        put(&tx, "roster_digest", roster.digest())?;
        if let Some((v, key)) = gossip_key {
            put_gossip_key(&tx, v, &key)?;
        }
        tx.commit()?;
        let version = roster.version();
        inner.roster = Some(roster);
        Ok(version)
    }

    /// The roster held.
    pub fn roster(&self) -> Result<Roster, StoreError> {
        self.lock().roster.clone().ok_or(StoreError::NotProvisioned)
    }

    /// Version and size of the roster held.
    pub fn roster_info(&self) -> Result<RosterInfo, StoreError> {
        let roster = self.roster()?;
        Ok(RosterInfo {
            version: roster.version(),
            devices: roster.entries().count(),
            revoked: roster
                .entries()
                .filter(|e| e.revoked_at_ms.is_some())
                .count(),
        })
    }

    /// The newest two gossip keys, newest first: `(roster version, key)`.
    /// Envelopes are sealed with the first and accepted under either.
    pub fn gossip_keys(&self) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner
            .conn
            .prepare_cached("SELECT version, key FROM gossip_keys ORDER BY version DESC LIMIT 2")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, [u8; 32]>(1)?)))?;
        rows.map(|r| r.map(|(v, k)| (u64_of(v), k)).map_err(StoreError::from))
            .collect()
    }

    /// Evidence kept of refused records, newest first, at most `limit`.
    pub fn evidence(&self, limit: usize) -> Result<Vec<Evidence>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare_cached(
            "SELECT kind, record, signature, received_at_ms FROM checkin_evidence
             ORDER BY received_at_ms DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit.min(10_000) as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, [u8; 64]>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, body, sig, at) = row?;
            out.push(Evidence {
                kind,
                record: ScanRecord::from_parts(&body, sig)
                    .map_err(|e| StoreError::Corrupt(format!("evidence record: {e}")))?,
                received_at_ms: u64_of(at),
            });
        }
        Ok(out)
    }

    /// Evidence counts: `(conflicts, revoked)`.
    pub fn evidence_counts(&self) -> Result<(u64, u64), StoreError> {
        let inner = self.lock();
        let count = |kind: &str| -> Result<u64, StoreError> {
            let n: i64 = inner.conn.query_row(
                "SELECT count(*) FROM checkin_evidence WHERE kind = ?1",
                [kind],
                |r| r.get(0),
            )?;
            Ok(u64_of(n))
        };
        Ok((count("conflict")?, count("revoked")?))
    }
}

impl Inner {
    pub(super) fn reload_roster(&mut self) -> Result<(), StoreError> {
        self.roster = match &self.identity {
            None => None,
            Some(id) => Some(load_roster(&self.conn, id.event_id)?),
        };
        Ok(())
    }
}
