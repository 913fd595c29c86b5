//! Named zones of an event: "Balcony" = zone 2. Credentials, tiers
//! (`zone_mask`) and gate policies keep carrying zone numbers; the names
//! are for people (the API, the console, the gate's status).
//!
//! A zone's name can be changed at any time (nothing signed carries it); a
//! zone can lose its name only while nothing uses its number: no tier's
//! mask, no unspent unexpired enrollment code, no unrevoked device. The
//! check and the delete run in one write transaction holding the event's
//! lock, the lock `add_tier` takes too.

use super::sql::{col, map_err, narrow, parsed};
use super::{Dialect, EventRecord, SqlStore, StoreError, StoreResult};
use crate::model::{EventId, UnixMillis};
use async_trait::async_trait;
use std::collections::HashMap;

/// One named zone of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    /// Zone number (0 to 31), the bit in a tier's `zone_mask`.
    pub zone: u8,
    /// Its name, unique in the event (1 to 32 characters).
    pub name: String,
}

/// What still uses a zone number, so it cannot lose its name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneUsers {
    /// Names of the tiers whose mask admits to the zone.
    pub tiers: Vec<String>,
    /// Unspent, unexpired enrollment codes for a gate of the zone.
    pub codes: i64,
    /// Names of the unrevoked devices guarding the zone.
    pub devices: Vec<String>,
}

impl ZoneUsers {
    /// Whether nothing uses the zone.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty() && self.codes == 0 && self.devices.is_empty()
    }
}

impl std::fmt::Display for ZoneUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.tiers.is_empty() {
            parts.push(format!("tiers {}", quoted(&self.tiers)));
        }
        if self.codes > 0 {
            parts.push(format!("{} unused enrollment code(s)", self.codes));
        }
        if !self.devices.is_empty() {
            parts.push(format!("devices {}", quoted(&self.devices)));
        }
        f.write_str(&parts.join(", "))
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a zone could not lose its name.
#[derive(Debug)]
pub enum DeleteZoneError {
    /// The zone number is still used (nothing was deleted).
    InUse(ZoneUsers),
    /// A storage failure (`NotFound` when the zone has no name).
    Store(StoreError),
}

impl From<StoreError> for DeleteZoneError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The zones of events.
#[async_trait]
pub trait ZoneStore: Send + Sync {
    /// The event's named zones, ascending by number.
    async fn zones(&self, event: EventId) -> StoreResult<Vec<ZoneRecord>>;
    /// Names zone `zone` of `event` (or renames it); `Duplicate` when
    /// another zone of the event has that name.
    async fn set_zone(
        &self,
        event: EventId,
        zone: &ZoneRecord,
        now: UnixMillis,
    ) -> StoreResult<ZoneRecord>;
    /// Removes the name of zone `zone`, unless something still uses it.
    /// Unexpired codes are those with `expires_at > now`.
    async fn delete_zone(
        &self,
        event: EventId,
        zone: u8,
        now: UnixMillis,
    ) -> Result<(), DeleteZoneError>;
}

fn zone_from_row(row: &sqlx::any::AnyRow) -> StoreResult<ZoneRecord> {
    Ok(ZoneRecord {
        zone: narrow(row, "zone")?,
        name: col(row, "name")?,
    })
}

impl<D: Dialect> SqlStore<D> {
    /// Fills in the named zones of `events` with one query.
    pub(super) async fn attach_zones(&self, events: &mut [EventRecord]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let marks: Vec<String> = (1..=events.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT event_id, zone, name FROM event_zones WHERE event_id IN ({}) ORDER BY zone",
            marks.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in events.iter() {
            q = q.bind(e.id.to_string());
        }
        let rows = q.fetch_all(&self.pool).await.map_err(map_err)?;
        let mut by_event: HashMap<EventId, Vec<ZoneRecord>> = HashMap::new();
        for row in &rows {
            by_event
                .entry(parsed(row, "event_id")?)
                .or_default()
                .push(zone_from_row(row)?);
        }
        for e in events {
            e.zones = by_event.remove(&e.id).unwrap_or_default();
        }
        Ok(())
    }

    /// Inserts zones of a new event (inside its creating transaction).
    pub(super) async fn insert_zones(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        event: EventId,
        zones: &[ZoneRecord],
        now: UnixMillis,
    ) -> StoreResult<()> {
        for z in zones {
            sqlx::query(
                "INSERT INTO event_zones (event_id, zone, name, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(event.to_string())
            .bind(i64::from(z.zone))
            .bind(z.name.clone())
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(|e| duplicate_name(e, z))?;
        }
        Ok(())
    }

    async fn zone_users(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        event: EventId,
        zone: u8,
        now: UnixMillis,
    ) -> StoreResult<ZoneUsers> {
        let tiers = sqlx::query_scalar(
            "SELECT name FROM tiers WHERE event_id = $1 AND (zone_mask & $2) <> 0 ORDER BY tier",
        )
        .bind(event.to_string())
        .bind(1_i64 << zone)
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        let codes = sqlx::query_scalar(
            "SELECT COUNT(*) FROM enrollment_codes WHERE event_id = $1 AND zone = $2 \
             AND used_at IS NULL AND expires_at > $3",
        )
        .bind(event.to_string())
        .bind(i64::from(zone))
        .bind(now)
        .fetch_one(&mut **tx)
        .await
        .map_err(map_err)?;
        let devices = sqlx::query_scalar(
            "SELECT name FROM devices WHERE event_id = $1 AND zone = $2 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(event.to_string())
        .bind(i64::from(zone))
        .fetch_all(&mut **tx)
        .await
        .map_err(map_err)?;
        Ok(ZoneUsers {
            tiers,
            codes,
            devices,
        })
    }
}

fn duplicate_name(e: sqlx::Error, z: &ZoneRecord) -> StoreError {
    match map_err(e) {
        StoreError::Duplicate(_) => StoreError::Duplicate(format!(
            "another zone of this event is already named {:?}: pick another name, or rename that zone first",
            z.name
        )),
        other => other,
    }
}

#[async_trait]
impl<D: Dialect> ZoneStore for SqlStore<D> {
    async fn zones(&self, event: EventId) -> StoreResult<Vec<ZoneRecord>> {
        let rows =
            sqlx::query("SELECT zone, name FROM event_zones WHERE event_id = $1 ORDER BY zone")
                .bind(event.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        rows.iter().map(zone_from_row).collect()
    }

    async fn set_zone(
        &self,
        event: EventId,
        zone: &ZoneRecord,
        now: UnixMillis,
    ) -> StoreResult<ZoneRecord> {
        sqlx::query(
            "INSERT INTO event_zones (event_id, zone, name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id, zone) DO UPDATE SET name = excluded.name",
        )
        .bind(event.to_string())
        .bind(i64::from(zone.zone))
        .bind(zone.name.clone())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| duplicate_name(e, zone))?;
        Ok(zone.clone())
    }

    async fn delete_zone(
        &self,
        event: EventId,
        zone: u8,
        now: UnixMillis,
    ) -> Result<(), DeleteZoneError> {
        let mut tx = self.begin_write().await?;
        Self::lock_event(&mut tx, event, now).await?;
        let users = Self::zone_users(&mut tx, event, zone, now).await?;
        if !users.is_empty() {
            return Err(DeleteZoneError::InUse(users));
        }
        let n = sqlx::query("DELETE FROM event_zones WHERE event_id = $1 AND zone = $2")
            .bind(event.to_string())
            .bind(i64::from(zone))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("named zone").into());
        }
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }
}
