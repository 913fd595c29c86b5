//! Read-only listings for a person at a scanner app: every manifest entry
//! (the app's attendee search indexes them in memory) and when the manifest
//! held was issued (its age on the sync bar).

use super::{Store, StoreError, get_u64};
use sync_protocol::manifest::EntryStatus;
use sync_protocol::{ManifestEntry, TicketId};

impl Store {
    /// Every manifest entry held, in ticket id order.
    pub fn manifest_entries(&self) -> Result<Vec<ManifestEntry>, StoreError> {
        let inner = self.lock();
        let mut stmt = inner.conn.prepare(
            "SELECT ticket_id, generation, tier, zones, revoked, reentry, display_name
             FROM manifest_entries ORDER BY ticket_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, [u8; 16]>(0)?,
                ManifestEntry {
                    ticket_id: TicketId::from_bytes([0; 16]),
                    generation: r.get(1)?,
                    tier: r.get(2)?,
                    zones: r.get(3)?,
                    status: if r.get::<_, bool>(4)? {
                        EntryStatus::Revoked
                    } else {
                        EntryStatus::Valid
                    },
                    reentry: r.get(5)?,
                    display_name: r.get(6)?,
                },
            ))
        })?;
        rows.map(|row| {
            let (id, mut entry) = row?;
            entry.ticket_id = TicketId::from_bytes(id);
            Ok(entry)
        })
        .collect()
    }

    /// When the manifest held was issued (unix seconds), if one is held.
    pub fn manifest_issued_at(&self) -> Result<Option<u64>, StoreError> {
        get_u64(&self.lock().conn, "manifest_issued_at")
    }
}
