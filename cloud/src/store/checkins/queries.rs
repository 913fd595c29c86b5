//! Reads over the stored check-ins: one scan, a ticket's scans, pages in
//! HLC order (keyset on `(hlc, node_id, seq)`), the admitted scans an event's
//! fold needs, per-gate counts, and a ticket's current manifest entry.

use super::super::sql::{col, map_err, narrow, not_found, parsed};
use super::super::{Dialect, SqlStore, StoreError, StoreResult};
use crate::model::{EventId, UnixMillis, UserId};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use sync_protocol::manifest::{EntryStatus, ManifestEntry};
use sync_protocol::{ScanId, ScanRecord, TicketId};

/// A scan as stored: the record and when the cloud received it.
#[derive(Debug, Clone)]
pub struct StoredScan {
    /// The record (exact bytes as recorded by its node).
    pub record: ScanRecord,
    /// When the cloud stored it, unix ms.
    pub received_at: UnixMillis,
}

/// Which scans to list (every condition that is set must hold).
#[derive(Debug, Clone, Default)]
pub struct ScanFilter {
    /// Scans at this event.
    pub event_id: Option<EventId>,
    /// Scans of tickets this user owns.
    pub owner_id: Option<UserId>,
    /// Scans at events this organizer runs.
    pub organizer_id: Option<UserId>,
    /// Scans at events on whose staff roster this user is.
    pub staff_id: Option<UserId>,
    /// Scans after this one in `(hlc, node, seq)` order.
    pub after: Option<ScanId>,
    /// Page size.
    pub limit: i64,
}

/// Scans at one gate label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateCount {
    /// Gate label.
    pub gate: String,
    /// Admitted entries.
    pub admitted: i64,
    /// Admitted exits.
    pub exits: i64,
    /// Rejected scans.
    pub rejected: i64,
}

/// Decodes the `record` column, with the `signature` column when the query
/// selected it.
pub(super) fn decode(row: &AnyRow) -> StoreResult<ScanRecord> {
    use sqlx::Row;
    let bytes: Option<Vec<u8>> = col(row, "record")?;
    let bytes = bytes.ok_or_else(|| StoreError::Other("check-in row without record".into()))?;
    let signature = row
        .try_get::<Option<Vec<u8>>, _>("signature")
        .ok()
        .flatten()
        .and_then(|s| <[u8; 64]>::try_from(s).ok())
        .unwrap_or([0; 64]);
    ScanRecord::from_parts(&bytes, signature)
        .map_err(|e| StoreError::Other(format!("stored scan: {e}")))
}

fn stored(row: &AnyRow) -> StoreResult<StoredScan> {
    Ok(StoredScan {
        record: decode(row)?,
        received_at: col(row, "recorded_at")?,
    })
}

impl<D: Dialect> SqlStore<D> {
    /// A ticket's records, inside a write transaction (for a decision).
    pub(super) async fn ticket_records(
        tx: &mut Transaction<'static, Any>,
        event: EventId,
        ticket: TicketId,
    ) -> StoreResult<Vec<ScanRecord>> {
        let rows =
            sqlx::query("SELECT record FROM checkins WHERE event_id = $1 AND ticket_id = $2")
                .bind(event.to_string())
                .bind(ticket.to_string())
                .fetch_all(&mut **tx)
                .await
                .map_err(map_err)?;
        rows.iter().map(decode).collect()
    }

    pub(super) async fn scans_of_ticket(
        &self,
        event: EventId,
        ticket: TicketId,
    ) -> StoreResult<Vec<StoredScan>> {
        let rows = sqlx::query(
            "SELECT record, recorded_at FROM checkins WHERE event_id = $1 AND ticket_id = $2 \
             ORDER BY hlc, node_id, seq",
        )
        .bind(event.to_string())
        .bind(ticket.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(stored).collect()
    }

    pub(super) async fn scan_by_id(&self, id: ScanId) -> StoreResult<StoredScan> {
        let row = sqlx::query("SELECT record, recorded_at FROM checkins WHERE scan_id = $1")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(not_found("scan"))?;
        stored(&row)
    }

    pub(super) async fn scans_page(&self, f: &ScanFilter) -> StoreResult<Vec<StoredScan>> {
        let after = match f.after {
            Some(id) => {
                let row = sqlx::query("SELECT hlc, node_id, seq FROM checkins WHERE scan_id = $1")
                    .bind(id.to_string())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(not_found("cursor scan"))?;
                Some((
                    col::<i64>(&row, "hlc")?,
                    col::<String>(&row, "node_id")?,
                    col::<i64>(&row, "seq")?,
                ))
            }
            None => None,
        };
        let (hlc, node, seq) = match after {
            Some((h, n, s)) => (Some(h), Some(n), Some(s)),
            None => (None, None, None),
        };
        let rows = sqlx::query(
            "SELECT c.record, c.recorded_at FROM checkins c \
             JOIN events e ON e.id = c.event_id \
             LEFT JOIN tickets t ON t.id = c.ticket_id \
             WHERE ($1 IS NULL OR c.event_id = $1) AND ($2 IS NULL OR t.owner_id = $2) \
               AND ($3 IS NULL OR e.organizer_id = $3) \
               AND ($4 IS NULL OR c.hlc > $4 OR (c.hlc = $4 AND (c.node_id > $5 OR (c.node_id = $5 AND c.seq > $6)))) \
               AND ($8 IS NULL OR EXISTS (SELECT 1 FROM event_staff s WHERE s.event_id = c.event_id AND s.user_id = $8)) \
             ORDER BY c.hlc, c.node_id, c.seq LIMIT $7",
        )
        .bind(f.event_id.map(|e| e.to_string()))
        .bind(f.owner_id.map(|u| u.to_string()))
        .bind(f.organizer_id.map(|u| u.to_string()))
        .bind(hlc)
        .bind(node)
        .bind(seq)
        .bind(f.limit)
        .bind(f.staff_id.map(|u| u.to_string()))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(stored).collect()
    }

    pub(super) async fn admitted_of_event(&self, event: EventId) -> StoreResult<Vec<ScanRecord>> {
        let rows = sqlx::query("SELECT record FROM checkins WHERE event_id = $1 AND outcome = 0")
            .bind(event.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(decode).collect()
    }

    pub(super) async fn counts_by_gate(&self, event: EventId) -> StoreResult<Vec<GateCount>> {
        let rows = sqlx::query(
            "SELECT gate, \
             CAST(COALESCE(SUM(CASE WHEN outcome = 0 AND direction = 'entry' THEN 1 ELSE 0 END), 0) AS BIGINT) AS admitted, \
             CAST(COALESCE(SUM(CASE WHEN outcome = 0 AND direction = 'exit' THEN 1 ELSE 0 END), 0) AS BIGINT) AS exits, \
             CAST(COALESCE(SUM(CASE WHEN outcome <> 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS rejected \
             FROM checkins WHERE event_id = $1 GROUP BY gate ORDER BY gate",
        )
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(GateCount {
                    gate: col(r, "gate")?,
                    admitted: col(r, "admitted")?,
                    exits: col(r, "exits")?,
                    rejected: col(r, "rejected")?,
                })
            })
            .collect()
    }

    pub(super) async fn current_entry(
        &self,
        event: EventId,
        ticket: TicketId,
    ) -> StoreResult<Option<ManifestEntry>> {
        let row = sqlx::query(
            "SELECT ticket_id, generation, tier, zones, revoked, reentry, display_name \
             FROM manifest_changes WHERE event_id = $1 AND ticket_id = $2 ORDER BY version DESC LIMIT 1",
        )
        .bind(event.to_string())
        .bind(ticket.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|row| {
            let revoked: i64 = col(&row, "revoked")?;
            let reentry: i64 = col(&row, "reentry")?;
            Ok(ManifestEntry {
                ticket_id: parsed(&row, "ticket_id")?,
                generation: narrow(&row, "generation")?,
                tier: narrow(&row, "tier")?,
                zones: narrow(&row, "zones")?,
                status: if revoked != 0 {
                    EntryStatus::Revoked
                } else {
                    EntryStatus::Valid
                },
                reentry: reentry != 0,
                display_name: col(&row, "display_name")?,
            })
        })
        .transpose()
    }
}
