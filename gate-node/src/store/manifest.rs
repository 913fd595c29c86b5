//! The manifest on SQLite: full replacement and chained deltas, each in one
//! transaction, and [`ManifestView`] over the entries table.
//!
//! Invariants (as [`sync_protocol::ManifestState`]): bytes are verified
//! against the key ring before anything is written; a full manifest never
//! rolls the version back; a delta applies only on top of the exact
//! `(version, digest)` held, otherwise nothing changes and the caller fetches
//! a full manifest.

use super::{Inner, Store, StoreError, get, get_array, get_u64, put};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use std::cell::RefCell;
use sync_protocol::manifest::{DoorNews, DoorState, EntryStatus, ManifestError};
use sync_protocol::{
    KeyCertificate, KeyRetirement, Manifest, ManifestDelta, ManifestEntry, ManifestView, TicketId,
};

/// The manifest held, in short.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ManifestInfo {
    /// Version held (0 before the first manifest).
    pub version: u64,
    /// Chain digest held, hex.
    pub digest: String,
    /// Number of entries.
    pub entries: u64,
    /// The event's door state as last told, and since when it is known
    /// (a gate that has been offline says how old its news is).
    pub door: DoorNews,
}

/// What applying manifest bytes did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Version before.
    pub from: u64,
    /// Version after.
    pub to: u64,
    /// Entries written.
    pub entries: usize,
}

fn held(conn: &Connection) -> Result<(u64, [u8; 32]), StoreError> {
    let version = get_u64(conn, "manifest_version")?.unwrap_or(0);
    let digest = get_array::<32>(conn, "manifest_digest")?
        .ok_or_else(|| StoreError::Corrupt("no manifest digest".into()))?;
    Ok((version, digest))
}

fn upsert_entries(conn: &Connection, entries: &[ManifestEntry]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO manifest_entries
             (ticket_id, generation, tier, zones, revoked, reentry, display_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (ticket_id) DO UPDATE SET
             generation = excluded.generation, tier = excluded.tier,
             zones = excluded.zones, revoked = excluded.revoked,
             reentry = excluded.reentry, display_name = excluded.display_name",
    )?;
    for e in entries {
        stmt.execute(params![
            e.ticket_id.as_bytes(),
            e.generation,
            e.tier,
            e.zones,
            e.status == EntryStatus::Revoked,
            e.reentry,
            e.display_name,
        ])?;
    }
    Ok(())
}

fn insert_certs(conn: &Connection, certs: &[KeyCertificate]) -> Result<(), StoreError> {
    for c in certs {
        conn.execute(
            "INSERT OR IGNORE INTO key_certs (cert) VALUES (?1)",
            params![c.encode()],
        )?;
    }
    Ok(())
}

fn set_held(
    conn: &Connection,
    version: u64,
    digest: &[u8; 32],
    issued_at: u64,
    door: Option<DoorState>,
) -> Result<(), StoreError> {
    put(conn, "manifest_version", &version.to_be_bytes())?;
    put(conn, "manifest_digest", digest)?;
    put(conn, "manifest_issued_at", &issued_at.to_be_bytes())?;
    // A manifest without a door state (layout 1) says nothing about it: the
    // last state told stays.
    if let Some(d) = door {
        put(conn, "door_state", &[d.code()])?;
        put(conn, "door_as_of", &issued_at.to_be_bytes())?;
    }
    Ok(())
}

/// The door state held and how fresh it is (meta keys `door_state`,
/// `door_as_of`: the signing time of the manifest that said it,
/// `door_checked_at`: the cloud's last "up to date" answer).
fn door_news(conn: &Connection) -> Result<DoorNews, StoreError> {
    // One statement, not three: this runs on every scan.
    let mut stmt = conn.prepare_cached(
        "SELECT key, value FROM meta WHERE key IN ('door_state', 'door_as_of', 'door_checked_at')",
    )?;
    let mut rows = stmt.query([])?;
    let (mut state, mut as_of) = (None, None::<u64>);
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let value: Vec<u8> = row.get(1)?;
        if key == "door_state" {
            state = Some(
                value
                    .first()
                    .copied()
                    .and_then(DoorState::from_code)
                    .ok_or_else(|| StoreError::Corrupt("meta door_state".into()))?,
            );
        } else {
            let at = u64::from_be_bytes(super::meta_array(&key, &value)?);
            as_of = as_of.max(Some(at));
        }
    }
    Ok(DoorNews {
        state,
        as_of: state.and(as_of),
    })
}

impl Store {
    /// Verifies and applies a full signed manifest, replacing every entry in
    /// one transaction. Refuses to roll back to an older version.
    pub fn apply_manifest(&self, bytes: &[u8]) -> Result<Applied, StoreError> {
        let mut inner = self.lock();
        let (ring, event) = ring_and_event(&inner)?;
        let m = Manifest::open(bytes, &ring, &event)?;
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (version, digest) = held(&tx)?;
        if m.version < version || (m.version == version && m.digest != digest) {
            return Err(ManifestError::Stale {
                held: version,
                got: m.version,
            }
            .into());
        }
        tx.execute("DELETE FROM manifest_entries", [])?;
        upsert_entries(&tx, &m.entries)?;
        insert_certs(&tx, &m.certs)?;
        set_held(&tx, m.version, &m.digest, m.issued_at, m.door)?;
        tx.commit()?;
        inner.reload()?;
        Ok(Applied {
            from: version,
            to: m.version,
            entries: m.entries.len(),
        })
    }

    /// Verifies and applies a signed delta if it starts from the held
    /// `(version, digest)`. On [`ManifestError::Gap`] or
    /// [`ManifestError::Fork`] nothing is written: fetch a full manifest.
    pub fn apply_delta(&self, bytes: &[u8]) -> Result<Applied, StoreError> {
        let mut inner = self.lock();
        let (ring, event) = ring_and_event(&inner)?;
        let d = ManifestDelta::open(bytes, &ring, &event)?;
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (version, digest) = held(&tx)?;
        d.check_base(version, &digest)?;
        upsert_entries(&tx, &d.entries)?;
        insert_certs(&tx, &d.certs)?;
        set_held(&tx, d.version, &d.digest, d.issued_at, d.door)?;
        tx.commit()?;
        inner.reload()?;
        Ok(Applied {
            from: version,
            to: d.version,
            entries: d.entries.len(),
        })
    }

    /// Verifies and stores the root's retirements of event keys (the
    /// cloud's `X-Key-Retirements`); from then on the key ring refuses those
    /// keys. Returns how many were new. A retirement for another event, or
    /// not signed by the root, is refused and nothing is written.
    pub fn apply_retirements(&self, encoded: &[Vec<u8>]) -> Result<usize, StoreError> {
        if encoded.is_empty() {
            return Ok(0);
        }
        let mut inner = self.lock();
        let (mut ring, event) = ring_and_event(&inner)?;
        let mut fresh = Vec::new();
        for bytes in encoded {
            let r = KeyRetirement::decode(bytes)
                .map_err(|e| StoreError::BadCertificate(format!("key retirement: {e}")))?;
            if r.event_id != event {
                return Err(StoreError::BadCertificate(
                    "key retirement for another event".into(),
                ));
            }
            if ring.retirement(&r.key_id, &r.event_id).is_some() {
                continue;
            }
            ring.retire(r)
                .map_err(|e| StoreError::BadCertificate(format!("key retirement: {e}")))?;
            fresh.push(bytes);
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        let tx = inner
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for bytes in &fresh {
            tx.execute(
                "INSERT OR IGNORE INTO key_retirements (retirement) VALUES (?1)",
                params![bytes],
            )?;
        }
        tx.commit()?;
        inner.reload()?;
        Ok(fresh.len())
    }

    /// Records that the cloud answered, at `at_secs` (best time, unix s),
    /// that the version held is current: the door news is that fresh.
    pub fn confirm_manifest_current(&self, at_secs: u64) -> Result<(), StoreError> {
        let inner = self.lock();
        let held = get_u64(&inner.conn, "door_checked_at")?.unwrap_or(0);
        if at_secs > held {
            put(&inner.conn, "door_checked_at", &at_secs.to_be_bytes())?;
        }
        Ok(())
    }

    /// The manifest version held (0 before the first), without counting
    /// its entries as [`Store::manifest_info`] does.
    pub fn manifest_version(&self) -> Result<u64, StoreError> {
        let inner = self.lock();
        Ok(get_u64(&inner.conn, "manifest_version")?.unwrap_or(0))
    }

    /// Version, digest and size of the manifest held.
    pub fn manifest_info(&self) -> Result<ManifestInfo, StoreError> {
        let inner = self.lock();
        let version = get_u64(&inner.conn, "manifest_version")?.unwrap_or(0);
        let digest = get(&inner.conn, "manifest_digest")?.unwrap_or_default();
        let entries: i64 =
            inner
                .conn
                .query_row("SELECT count(*) FROM manifest_entries", [], |r| r.get(0))?;
        Ok(ManifestInfo {
            version,
            digest: hex::encode(digest),
            entries: entries.max(0) as u64,
            door: door_news(&inner.conn)?,
        })
    }

    /// The manifest entry for one ticket.
    pub fn manifest_entry(&self, ticket: &TicketId) -> Result<Option<ManifestEntry>, StoreError> {
        let inner = self.lock();
        let view = SqlManifest::new(&inner.conn);
        let entry = view.entry(ticket);
        view.finish()?;
        Ok(entry)
    }
}

fn ring_and_event(
    inner: &Inner,
) -> Result<(sync_protocol::KeyRing, sync_protocol::EventId), StoreError> {
    let ring = inner.ring.clone().ok_or(StoreError::NotProvisioned)?;
    let event = inner
        .identity
        .as_ref()
        .ok_or(StoreError::NotProvisioned)?
        .event_id;
    Ok((ring, event))
}

/// [`ManifestView`] over a connection. The trait cannot return errors, so the
/// first SQL error is kept and [`SqlManifest::finish`] reports it: a decision
/// taken while the database failed is discarded, never acted on.
pub(crate) struct SqlManifest<'c> {
    conn: &'c Connection,
    error: RefCell<Option<StoreError>>,
}

impl<'c> SqlManifest<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            error: RefCell::new(None),
        }
    }

    pub(crate) fn finish(self) -> Result<(), StoreError> {
        self.error.into_inner().map_or(Ok(()), Err)
    }

    fn lookup(&self, ticket: &TicketId) -> Result<Option<ManifestEntry>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT generation, tier, zones, revoked, reentry, display_name
                 FROM manifest_entries WHERE ticket_id = ?1",
            )?
            .query_row([ticket.as_bytes()], |r| {
                Ok(ManifestEntry {
                    ticket_id: *ticket,
                    generation: r.get(0)?,
                    tier: r.get(1)?,
                    zones: r.get(2)?,
                    status: if r.get::<_, bool>(3)? {
                        EntryStatus::Revoked
                    } else {
                        EntryStatus::Valid
                    },
                    reentry: r.get(4)?,
                    display_name: r.get(5)?,
                })
            })
            .optional()?;
        Ok(row)
    }
}

impl ManifestView for SqlManifest<'_> {
    fn entry(&self, ticket: &TicketId) -> Option<ManifestEntry> {
        match self.lookup(ticket) {
            Ok(e) => e,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                None
            }
        }
    }

    fn door(&self) -> DoorNews {
        door_news(self.conn).unwrap_or_else(|e| {
            self.error.borrow_mut().get_or_insert(e);
            DoorNews::default()
        })
    }
}
