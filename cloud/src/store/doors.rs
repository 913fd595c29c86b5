//! Reads behind the live doors page (per-tier admissions, recent and
//! rejected scans, entries over the last hour) and the gate fleet's status
//! reports (`device_status`, written on every check-in sync).

use super::checkins::StoredScan;
use super::sql::{col, map_err, narrow, parsed};
use super::{Dialect, SqlStore, StoreError, StoreResult};
use crate::model::{EventId, UnixMillis};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sync_protocol::{NodeId, ScanRecord};

/// What a gate says about itself in its sync (every field optional: old
/// gates send nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateReport {
    /// Scans recorded at this gate that the cloud has not acknowledged.
    pub scans_waiting: Option<i64>,
    /// Manifest version held.
    pub manifest_version: Option<i64>,
    /// Where its time comes from (`cloud`, `peer`, `system_clock`, `last_known`).
    pub clock: Option<String>,
    /// Whether a trusted source vouches for its time.
    pub clock_trusted: Option<bool>,
    /// Its software version.
    pub software: Option<String>,
}

/// A device of the event with its latest report.
#[derive(Debug, Clone)]
pub struct FleetRow {
    /// Device (= node) id.
    pub device_id: NodeId,
    /// Name given at enrollment.
    pub name: String,
    /// Gate label.
    pub gate: String,
    /// Zone guarded (None: any).
    pub zone: Option<u8>,
    /// Revoked at.
    pub revoked_at: Option<UnixMillis>,
    /// Last authenticated call (coarse: updated at most once a minute).
    pub last_seen_at: Option<UnixMillis>,
    /// Last sync that reported.
    pub reported_at: Option<UnixMillis>,
    /// The report.
    pub report: GateReport,
    /// When the cloud made the manifest version the gate holds.
    pub manifest_made_at: Option<UnixMillis>,
}

/// Doors-page reads.
#[async_trait]
pub trait DoorsStore: Send + Sync {
    /// Records a gate's report (and that it synced now).
    async fn record_gate_report(
        &self,
        device: NodeId,
        event: EventId,
        report: &GateReport,
        now: UnixMillis,
    ) -> StoreResult<()>;
    /// The event's devices with their latest report, by id.
    async fn fleet(&self, event: EventId) -> StoreResult<Vec<FleetRow>>;
    /// Tickets admitted per tier (distinct tickets with an admitted entry).
    async fn admitted_per_tier(&self, event: EventId) -> StoreResult<Vec<(u16, i64)>>;
    /// The latest scans, newest first.
    async fn latest_scans(&self, event: EventId, limit: i64) -> StoreResult<Vec<StoredScan>>;
    /// Rejected scans per outcome code.
    async fn rejections(&self, event: EventId) -> StoreResult<Vec<(u8, i64)>>;
    /// Admitted entries the cloud received at or after `since`.
    async fn entries_since(
        &self,
        event: EventId,
        since: UnixMillis,
    ) -> StoreResult<Vec<ScanRecord>>;
}

fn record_of(row: &AnyRow) -> StoreResult<ScanRecord> {
    let bytes: Option<Vec<u8>> = col(row, "record")?;
    let bytes = bytes.ok_or_else(|| StoreError::Other("check-in row without record".into()))?;
    ScanRecord::from_bytes(&bytes).map_err(|e| StoreError::Other(format!("stored scan: {e}")))
}

fn fleet_from_row(row: &AnyRow) -> StoreResult<FleetRow> {
    let trusted: Option<i64> = col(row, "clock_trusted")?;
    let zone: Option<i64> = col(row, "zone")?;
    Ok(FleetRow {
        device_id: parsed(row, "id")?,
        name: col(row, "name")?,
        gate: col(row, "gate")?,
        zone: zone.and_then(|z| u8::try_from(z).ok()),
        revoked_at: col(row, "revoked_at")?,
        last_seen_at: col(row, "last_seen_at")?,
        reported_at: col(row, "reported_at")?,
        report: GateReport {
            scans_waiting: col(row, "scans_waiting")?,
            manifest_version: col(row, "manifest_version")?,
            clock: col(row, "clock")?,
            clock_trusted: trusted.map(|t| t != 0),
            software: col(row, "software")?,
        },
        manifest_made_at: col(row, "manifest_made_at")?,
    })
}

#[async_trait]
impl<D: Dialect> DoorsStore for SqlStore<D> {
    async fn record_gate_report(
        &self,
        device: NodeId,
        event: EventId,
        r: &GateReport,
        now: UnixMillis,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO device_status (device_id, event_id, reported_at, scans_waiting, manifest_version, \
             clock, clock_trusted, software) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (device_id) DO UPDATE SET reported_at = excluded.reported_at, \
             scans_waiting = excluded.scans_waiting, manifest_version = excluded.manifest_version, \
             clock = excluded.clock, clock_trusted = excluded.clock_trusted, software = excluded.software",
        )
        .bind(device.to_string())
        .bind(event.to_string())
        .bind(now)
        .bind(r.scans_waiting)
        .bind(r.manifest_version)
        .bind(r.clock.clone())
        .bind(r.clock_trusted.map(i64::from))
        .bind(r.software.clone())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn fleet(&self, event: EventId) -> StoreResult<Vec<FleetRow>> {
        let rows = sqlx::query(
            "SELECT d.id, d.name, d.gate, d.zone, d.revoked_at, d.last_seen_at, s.reported_at, s.scans_waiting, \
             s.manifest_version, s.clock, s.clock_trusted, s.software, \
             (SELECT mv.created_at FROM manifest_versions mv WHERE mv.event_id = d.event_id \
              AND mv.version = s.manifest_version) AS manifest_made_at \
             FROM devices d LEFT JOIN device_status s ON s.device_id = d.id \
             WHERE d.event_id = $1 ORDER BY d.id",
        )
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(fleet_from_row).collect()
    }

    async fn admitted_per_tier(&self, event: EventId) -> StoreResult<Vec<(u16, i64)>> {
        let rows = sqlx::query(
            "SELECT t.tier, CAST(COUNT(DISTINCT c.ticket_id) AS BIGINT) AS n FROM checkins c \
             JOIN tickets t ON t.id = c.ticket_id WHERE c.event_id = $1 AND c.outcome = 0 \
             AND c.direction = 'entry' GROUP BY t.tier ORDER BY t.tier",
        )
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| Ok((narrow(r, "tier")?, col(r, "n")?)))
            .collect()
    }

    async fn latest_scans(&self, event: EventId, limit: i64) -> StoreResult<Vec<StoredScan>> {
        let rows = sqlx::query(
            "SELECT record, recorded_at FROM checkins WHERE event_id = $1 \
             ORDER BY hlc DESC, node_id DESC, seq DESC LIMIT $2",
        )
        .bind(event.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(StoredScan {
                    record: record_of(r)?,
                    received_at: col(r, "recorded_at")?,
                })
            })
            .collect()
    }

    async fn rejections(&self, event: EventId) -> StoreResult<Vec<(u8, i64)>> {
        let rows = sqlx::query(
            "SELECT outcome, CAST(COUNT(*) AS BIGINT) AS n FROM checkins \
             WHERE event_id = $1 AND outcome <> 0 GROUP BY outcome ORDER BY outcome",
        )
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| Ok((narrow(r, "outcome")?, col(r, "n")?)))
            .collect()
    }

    async fn entries_since(
        &self,
        event: EventId,
        since: UnixMillis,
    ) -> StoreResult<Vec<ScanRecord>> {
        let rows = sqlx::query(
            "SELECT record FROM checkins WHERE event_id = $1 AND outcome = 0 \
             AND direction = 'entry' AND recorded_at >= $2",
        )
        .bind(event.to_string())
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(record_of).collect()
    }
}
